"""Per-operator tokens of the central MCP server: made, listed, revoked, and checked.

A token is a long random secret shown once when made; only its SHA-256 hash (one index probe
per request, no slow password hash needed for 32 random bytes) and a short prefix (so lists,
logs and the audit log can name a token without revealing it) are stored. A token acts as its
user: the user's tenant and role at the moment of each request, so demoting or deactivating
the user takes effect at once, and a revoked token is refused on its next request.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import class_row

from central import audit
from central.domain_errors import NotFound

TOKEN_PREFIX = "mcp_"
MAX_NAME = 100
MAX_TOKEN_LENGTH = 200  # anything longer is not one of ours: refused without a lookup


@dataclass(frozen=True, slots=True)
class TokenOwner:
    """Who a presented token acts as."""

    token_id: int
    prefix: str
    user_id: int
    email: str
    tenant_id: int
    role: str

    @property
    def actor(self) -> str:
        return f"user:{self.email}"


@dataclass(frozen=True, slots=True)
class McpToken:
    """A token as its owner sees it: never the secret."""

    id: int
    name: str
    prefix: str
    email: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


@dataclass(frozen=True, slots=True)
class NewToken:
    token_id: int
    prefix: str
    plaintext: str


def _hash(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


def _name(name: str) -> str:
    name = " ".join(name.split())
    if not 1 <= len(name) <= MAX_NAME:
        raise ValueError(f"name: expected 1 to {MAX_NAME} characters, e.g. 'Claude on my laptop'")
    return name


def create_token(
    conn: psycopg.Connection[Any], user_id: int, tenant_id: int, name: str, actor: str
) -> NewToken:
    """A new token for the user (of ``tenant_id``), audited; shown to the caller once."""
    name = _name(name)
    row = conn.execute(
        "SELECT 1 FROM users WHERE id = %s AND tenant_id = %s AND active", (user_id, tenant_id)
    ).fetchone()
    if row is None:
        raise NotFound(f"no active user {user_id} in the tenant")
    prefix = TOKEN_PREFIX + secrets.token_hex(4)
    plaintext = f"{prefix}_{secrets.token_urlsafe(32)}"
    made = conn.execute(
        """INSERT INTO mcp_tokens (user_id, name, prefix, token_hash) VALUES (%s, %s, %s, %s)
           RETURNING id""",
        (user_id, name, prefix, _hash(plaintext)),
    ).fetchone()
    assert made is not None
    audit.record(
        conn,
        tenant_id,
        actor,
        "mcp_token.create",
        ("mcp_token", made[0]),
        details={"prefix": prefix, "name": name, "user_id": user_id},
    )
    return NewToken(int(made[0]), prefix, plaintext)


def list_tokens(
    conn: psycopg.Connection[Any], tenant_id: int, user_id: int | None = None
) -> list[McpToken]:
    """The tenant's tokens (one user's with ``user_id``), newest first."""
    with conn.cursor(row_factory=class_row(McpToken)) as cur:
        return cur.execute(
            """SELECT t.id, t.name, t.prefix, u.email, t.created_at, t.last_used_at, t.revoked_at
               FROM mcp_tokens t JOIN users u ON u.id = t.user_id
               WHERE u.tenant_id = %s AND (%s::int IS NULL OR t.user_id = %s)
               ORDER BY t.id DESC""",
            (tenant_id, user_id, user_id),
        ).fetchall()


def revoke_token(
    conn: psycopg.Connection[Any],
    tenant_id: int,
    token_id: int,
    actor: str,
    *,
    user_id: int | None = None,
) -> str:
    """Revoke a token of the tenant (of that user only, with ``user_id``); its prefix.
    NotFound when there is no such unrevoked token."""
    row = conn.execute(
        """UPDATE mcp_tokens t SET revoked_at = now() FROM users u
           WHERE t.id = %s AND u.id = t.user_id AND u.tenant_id = %s
             AND (%s::int IS NULL OR t.user_id = %s) AND t.revoked_at IS NULL
           RETURNING t.prefix""",
        (token_id, tenant_id, user_id, user_id),
    ).fetchone()
    if row is None:
        raise NotFound(f"no unrevoked MCP token {token_id} of yours")
    audit.record(
        conn,
        tenant_id,
        actor,
        "mcp_token.revoke",
        ("mcp_token", token_id),
        details={"prefix": row[0]},
    )
    return str(row[0])


def authenticate(conn: psycopg.Connection[Any], token: str) -> TokenOwner | None:
    """The owner of a presented token, or None when it is unknown, revoked or its user is
    deactivated. Marks the token used (at most once a minute, to spare the writes)."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > MAX_TOKEN_LENGTH:
        return None
    with conn.cursor(row_factory=class_row(TokenOwner)) as cur:
        owner = cur.execute(
            """SELECT t.id AS token_id, t.prefix, u.id AS user_id, u.email, u.tenant_id, u.role
               FROM mcp_tokens t JOIN users u ON u.id = t.user_id
               WHERE t.token_hash = %s AND t.revoked_at IS NULL AND u.active""",
            (_hash(token),),
        ).fetchone()
    if owner is not None:
        conn.execute(
            """UPDATE mcp_tokens SET last_used_at = now() WHERE id = %s
               AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')""",
            (owner.token_id,),
        )
    return owner
