"""Operator authentication for the JSON API: bearer tokens, or HTTP Basic to obtain them.

``POST /api/v1/auth/token`` with HTTP Basic (e-mail, password; argon2id-verified) returns a bearer
token valid ``operator_token_hours``; later requests send ``Authorization: Bearer <token>``.
Basic is also accepted on every endpoint for scripts, at the price of an argon2 check (~50 ms)
per request, which is why tokens exist. Tokens, like API keys, are stored only as SHA-256 hashes.

Roles (``central.users``) are checked by ``central.access.require``; every user belongs to one
tenant: a user sees and changes only that tenant's sites.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg
from flask import g, request
from psycopg.rows import class_row

from central import users
from central.database import pool
from central.errors import ApiError
from common.attempts import guarded

TOKEN_PREFIX = "mop_"
PASSWORD_SCOPE = "password"  # one budget per account for the API and the UI


@dataclass(frozen=True, slots=True)
class Operator:
    user_id: int
    email: str
    tenant_id: int
    role: str

    @property
    def actor(self) -> str:
        return f"user:{self.email}"


def _unauthorized(message: str) -> ApiError:
    return ApiError(401, message)


def check_password(conn: psycopg.Connection[Any], email: str, password: str) -> Operator:
    """Behind the password limiter (``common.attempts``), shared with the UI's sign-in."""
    user = guarded(PASSWORD_SCOPE, email, lambda: users.check_password(conn, email, password))
    if user is None:
        raise _unauthorized("wrong e-mail or password (or the user is deactivated)")
    return Operator(user.id, user.email, user.tenant_id, user.role)


def issue_token(conn: psycopg.Connection[Any], user_id: int, hours: float) -> tuple[str, datetime]:
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = conn.execute(
        """INSERT INTO operator_tokens (user_id, token_hash, expires_at)
           VALUES (%s, %s, now() + %s) RETURNING expires_at""",
        (user_id, hashlib.sha256(token.encode()).digest(), timedelta(hours=hours)),
    ).fetchone()
    assert row is not None
    return token, row[0]


def basic_credentials() -> tuple[str, str] | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        email, sep, password = (
            base64.b64decode(value.strip(), validate=True).decode().partition(":")
        )
    except (binascii.Error, UnicodeDecodeError):
        raise _unauthorized(
            "Authorization: Basic credentials are not valid base64 of email:password"
        ) from None
    if not sep:
        raise _unauthorized("Authorization: Basic credentials must be email:password")
    return email, password


def current_operator() -> Operator:
    if "operator" in g:
        op: Operator = g.operator
        return op
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    with pool().connection() as conn:
        if scheme.lower() == "bearer" and value.strip():
            digest = hashlib.sha256(value.strip().encode()).digest()

            def lookup() -> Operator | None:
                with conn.cursor(row_factory=class_row(Operator)) as cur:
                    return cur.execute(
                        """SELECT u.id AS user_id, u.email, u.tenant_id, u.role
                           FROM operator_tokens t JOIN users u ON u.id = t.user_id
                           WHERE t.token_hash = %s AND t.expires_at > now() AND u.active""",
                        (digest,),
                    ).fetchone()

            found = guarded("operator-token", None, lookup)
            if found is None:
                raise _unauthorized(
                    "bearer token unknown or expired; get a new one from POST /api/v1/auth/token"
                )
            g.operator = found
        else:
            creds = basic_credentials()
            if creds is None:
                raise _unauthorized(
                    "missing Authorization; send 'Bearer <token>' (from POST /api/v1/auth/token) "
                    "or HTTP Basic e-mail and password"
                )
            g.operator = check_password(conn, *creds)
    op = g.operator
    return op
