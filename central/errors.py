"""JSON errors for the whole API: ``{"error": "...", "details": [...]}`` (see ``common.wire``).

Every refusal says what is wrong and how to fix it; the database being away is a 503 the
appliance retries, never a 500 it would treat as a bug.
"""

from __future__ import annotations

import logging
from typing import Any

import psycopg
from flask import Flask, Response, jsonify
from psycopg_pool import PoolTimeout
from werkzeug.exceptions import HTTPException

from common.attempts import TooManyAttempts

logger = logging.getLogger(__name__)


class ApiError(Exception):
    def __init__(self, status: int, message: str, details: list[Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.details = details or []
        self.headers: dict[str, str] = {}  # e.g. Retry-After on a 429


def error_response(status: int, message: str, details: list[Any] | None = None) -> Response:
    response = jsonify({"error": message, "details": details or []})
    response.status_code = status
    return response


def _api_error(err: ApiError) -> Response:
    response = error_response(err.status, err.message, err.details)
    response.headers.update(err.headers)
    return response


def _http_error(err: HTTPException) -> Response:
    status = err.code or 500
    message = err.description or err.name
    if status == 429:
        message = f"rate limit exceeded ({err.description}); retry after the Retry-After seconds"
    response = error_response(status, message)
    original = err.get_response()
    for header in ("Retry-After", "Allow", "WWW-Authenticate"):
        if header in original.headers:
            response.headers[header] = original.headers[header]
    return response


def _database_down(err: Exception) -> Response:
    logger.error("database unavailable: %s", err)
    response = error_response(
        503, "the central database is unavailable; retry later", [str(err).splitlines()[0]]
    )
    response.headers["Retry-After"] = "30"
    return response


def _bad_data(err: Exception) -> Response:
    return error_response(
        422, f"a value cannot be stored: {str(err).splitlines()[0]}; fix the value and resend"
    )


def _unexpected(err: Exception) -> Response:
    logger.exception("unhandled error: %s", err)
    return error_response(500, "internal error; the server log has the details")


def _too_many_attempts(err: TooManyAttempts) -> Response:
    response = error_response(
        429, f"{err}; the failures are counted per account and per client address"
    )
    response.headers["Retry-After"] = str(err.retry_after)
    return response


def init_app(app: Flask) -> None:
    app.register_error_handler(ApiError, _api_error)
    app.register_error_handler(TooManyAttempts, _too_many_attempts)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(psycopg.OperationalError, _database_down)
    app.register_error_handler(PoolTimeout, _database_down)
    app.register_error_handler(psycopg.errors.DataError, _bad_data)
    app.register_error_handler(Exception, _unexpected)
