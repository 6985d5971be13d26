"""Site API keys: generation, hashing at rest, lookup, rotation with overlap, revocation.

A key is shown once when made. Only its SHA-256 hash and a short prefix are stored: the hash
because a key is a long random secret (no slow password hash needed, and lookup by hash is one
index probe per request); the prefix so operators and logs can name a key without revealing it.
The functions here run inside the caller's transaction and write their audit entry there, so the
change and its record commit together; the bare writes under them are private.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg.rows import class_row, scalar_row

from central import audit
from central.domain_errors import NotFound
from central.tenants import site_tenant

KEY_PREFIX = "mtk_"


class KeyAuthError(Exception):
    """The request's API key cannot be used; the message says why and what to do."""


@dataclass(frozen=True, slots=True)
class SiteIdentity:
    """Who is calling the sync API: the site behind a valid key."""

    site_id: int
    site_name: str
    tenant_id: int
    tenant_name: str
    key_id: int
    key_prefix: str
    config_version: int
    key_expires_at: datetime | None


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A site's key as operators see it: never the secret, only its prefix and its life."""

    id: int
    prefix: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    usable: bool

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "prefix": self.prefix,
            "created_at": self.created_at.isoformat(),
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
            "usable": self.usable,
        }


@dataclass(frozen=True, slots=True)
class _PresentedKey:
    """What ``authenticate`` reads about a presented key and its site."""

    key_id: int
    prefix: str
    expires_at: datetime | None
    revoked_at: datetime | None
    expired: bool | None
    site_id: int
    site_name: str
    site_active: bool
    config_version: int
    tenant_id: int
    tenant_name: str
    stored_answer: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class NewKey:
    key_id: int
    prefix: str
    plaintext: str


def hash_key(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8")).digest()


def generate() -> tuple[str, str]:
    """(plaintext key, lookup prefix); 32 random bytes make guessing hopeless."""
    ident = secrets.token_hex(4)
    prefix = f"{KEY_PREFIX}{ident}"
    return f"{prefix}_{secrets.token_urlsafe(32)}", prefix


def _insert_key(conn: psycopg.Connection[Any], site_id: int) -> NewKey:
    plaintext, prefix = generate()
    row = conn.execute(
        "INSERT INTO api_keys (site_id, prefix, key_hash) VALUES (%s, %s, %s) RETURNING id",
        (site_id, prefix, hash_key(plaintext)),
    ).fetchone()
    assert row is not None
    return NewKey(row[0], prefix, plaintext)


def create_key(conn: psycopg.Connection[Any], site_id: int, actor: str) -> NewKey:
    """One more key for the site, audited; the site's other keys keep working."""
    tenant_id = site_tenant(conn, site_id)
    key = _insert_key(conn, site_id)
    audit.record(
        conn,
        tenant_id,
        actor,
        "key.create",
        ("api_key", key.key_id),
        details={"prefix": key.prefix},
    )
    return key


def _expire_current(conn: psycopg.Connection[Any], site_id: int, overlap: timedelta) -> list[str]:
    """Set the site's usable keys to end ``overlap`` from now; keys already ending sooner keep
    their earlier end. Returns their prefixes."""
    with conn.cursor(row_factory=scalar_row) as cur:
        return cur.execute(
            """UPDATE api_keys SET expires_at = now() + %s
               WHERE site_id = %s AND revoked_at IS NULL
                 AND (expires_at IS NULL OR expires_at > now() + %s)
               RETURNING prefix""",
            (overlap, site_id, overlap),
        ).fetchall()


def rotate_key(
    conn: psycopg.Connection[Any], site_id: int, overlap: timedelta, actor: str
) -> NewKey:
    """A new key; the site's current keys keep working until ``overlap`` from now.

    The overlap lets an appliance that is offline or mid-upload finish with its old key while
    the new one is being installed.
    """
    tenant_id = site_tenant(conn, site_id)
    expiring = _expire_current(conn, site_id, overlap)
    new = _insert_key(conn, site_id)
    audit.record(
        conn,
        tenant_id,
        actor,
        "key.rotate",
        ("api_key", new.key_id),
        details={
            "site_id": site_id,
            "prefix": new.prefix,
            "old_prefixes": expiring,
            "overlap_s": overlap.total_seconds(),
        },
    )
    return new


def _revoke(conn: psycopg.Connection[Any], site_id: int, prefix: str | None) -> list[str]:
    with conn.cursor(row_factory=scalar_row) as cur:
        return cur.execute(
            """UPDATE api_keys SET revoked_at = now()
               WHERE site_id = %s AND revoked_at IS NULL
                 AND (prefix = %s OR (%s::text IS NULL AND (expires_at IS NULL OR expires_at > now())))
               RETURNING prefix""",
            (site_id, prefix, prefix),
        ).fetchall()


def revoke_keys(
    conn: psycopg.Connection[Any], site_id: int, prefix: str | None, actor: str
) -> list[str]:
    """Revoke one key of the site (by prefix) or all still usable; returns the prefixes revoked.
    NotFound when there was none to revoke."""
    tenant_id = site_tenant(conn, site_id)
    revoked = _revoke(conn, site_id, prefix)
    if not revoked:
        which = f"key {prefix}" if prefix else "any usable key"
        raise NotFound(f"site {site_id} has no unrevoked {which}")
    audit.record(
        conn, tenant_id, actor, "key.revoke", ("site", site_id), details={"prefixes": revoked}
    )
    return revoked


def list_keys(conn: psycopg.Connection[Any], site_id: int) -> list[ApiKey]:
    with conn.cursor(row_factory=class_row(ApiKey)) as cur:
        return cur.execute(
            """SELECT id, prefix, created_at, expires_at, revoked_at,
                      revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now()) AS usable
               FROM api_keys WHERE site_id = %s ORDER BY id""",
            (site_id,),
        ).fetchall()


def _shown(key: str) -> str:
    """What a log or error may say about a presented key: its prefix, never the secret."""
    return key[: len(KEY_PREFIX) + 8] + "…" if key.startswith(KEY_PREFIX) else "(unrecognised form)"


# The stored answer of a batch upload's idempotency key comes in the same round trip as the key
# (``authenticate_batch``): a replay is answered without a second statement, and a first upload
# learns it is one. With no idempotency key the probe is ``= NULL``, which finds nothing at once.
AUTHENTICATE_SQL = """
SELECT k.id AS key_id, k.prefix, k.expires_at, k.revoked_at,
       k.expires_at <= now() AS expired, s.id AS site_id, s.name AS site_name,
       s.active AS site_active, s.config_version, t.id AS tenant_id, t.name AS tenant_name,
       (SELECT b.response FROM sync_batches b
        WHERE b.site_id = s.id AND b.idempotency_key = %s) AS stored_answer
FROM api_keys k JOIN sites s ON s.id = k.site_id
JOIN tenants t ON t.id = s.tenant_id
WHERE k.key_hash = %s
"""


def authenticate(conn: psycopg.Connection[Any], key: str | None) -> SiteIdentity:
    """The site a presented key belongs to; KeyAuthError with a clear message otherwise."""
    identity, _ = authenticate_batch(conn, key, None)
    return identity


def authenticate_batch(
    conn: psycopg.Connection[Any], key: str | None, idempotency_key: str | None
) -> tuple[SiteIdentity, dict[str, Any] | None]:
    """``authenticate``, and the answer stored for the site's batch ``idempotency_key`` (None:
    no such batch committed yet), in one round trip. The answer is only returned once the key
    has passed every check below."""
    if not key:
        raise KeyAuthError(
            "missing X-API-Key header; send the site's API key "
            "(printed once by 'meterit-central site create' or 'key rotate')"
        )
    with conn.cursor(row_factory=class_row(_PresentedKey)) as cur:
        row = cur.execute(AUTHENTICATE_SQL, (idempotency_key, hash_key(key))).fetchone()
    if row is None:
        raise KeyAuthError(
            f"API key {_shown(key)} is not recognised; check the appliance's configured key "
            "or ask an operator for a new one ('meterit-central key rotate')"
        )
    if row.revoked_at is not None:
        raise KeyAuthError(
            f"API key {row.prefix} was revoked at {row.revoked_at.isoformat()}; "
            "ask an operator for the site's new key ('meterit-central key rotate')"
        )
    if row.expired and row.expires_at is not None:
        raise KeyAuthError(
            f"API key {row.prefix} expired at {row.expires_at.isoformat()} after a rotation; "
            "install the site's new key on the appliance"
        )
    if not row.site_active:
        raise KeyAuthError(
            f"site {row.site_name!r} (id {row.site_id}) is deactivated; its keys are refused"
        )
    identity = SiteIdentity(
        site_id=row.site_id,
        site_name=row.site_name,
        tenant_id=row.tenant_id,
        tenant_name=row.tenant_name,
        key_id=row.key_id,
        key_prefix=row.prefix,
        config_version=row.config_version,
        key_expires_at=row.expires_at,
    )
    return identity, None if row.stored_answer is None else dict(row.stored_answer)
