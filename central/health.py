"""``/health`` for load balancers and monitoring, ``/metrics`` for Prometheus.

/health opens a fresh database connection rather than borrowing one from the pool: a pooled
connection can look fine while the server is gone, and the question asked is "could a new
request be served now?".
"""

from __future__ import annotations

import redis
from flask import Blueprint, Response, current_app, jsonify

from central import metrics
from central.errors import ApiError
from common import metrics_access
from common.db import connect

bp = Blueprint("health", __name__)

TIMEOUT_S = 2


def _database() -> str:
    try:
        with connect(current_app.config["DATABASE_URL"], connect_timeout=TIMEOUT_S) as conn:
            conn.execute("SELECT 1")
    except Exception as err:
        return f"unreachable: {str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__}"
    return "ok"


def _redis() -> str:
    try:
        client = redis.Redis.from_url(
            current_app.config["REDIS_URL"],
            socket_timeout=TIMEOUT_S,
            socket_connect_timeout=TIMEOUT_S,
        )
        try:
            client.ping()
        finally:
            client.close()
    except Exception as err:
        return f"unreachable: {err}"
    return "ok"


@bp.get("/health")
def health() -> Response:
    checks = {"database": _database(), "redis": _redis()}
    healthy = all(v == "ok" for v in checks.values())
    response = jsonify({"status": "ok" if healthy else "unavailable", "checks": checks})
    response.status_code = 200 if healthy else 503
    return response


@bp.get("/metrics")
def prometheus() -> Response:
    refused = metrics_access.refusal(
        str(current_app.config.get("METRICS_ALLOW_FROM") or ""),
        current_app.config.get("METRICS_TOKEN") or None,
    )
    if refused is not None:
        raise ApiError(refused.status, refused.message)
    body, content_type = metrics.render()
    return Response(body, content_type=content_type)
