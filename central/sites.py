"""Tenants, sites, users and their keys: the operations both the CLI and the operator API use.

Each function runs in the caller's transaction and writes its audit entry there, so a change
and its record commit together or not at all. ``actor`` is ``'cli'`` or ``'user:<email>'``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import psycopg
from argon2 import PasswordHasher
from psycopg.types.json import Jsonb

from central import keys

ROLES = ("admin", "operator", "viewer")

_hasher = PasswordHasher()


class NotFound(Exception):
    """The tenant, site or key named does not exist (or is not visible to the caller)."""


class Conflict(Exception):
    """The name is already taken."""


@dataclass(frozen=True, slots=True)
class CreatedSite:
    site_id: int
    tenant_id: int
    name: str
    key: keys.NewKey


def audit(
    conn: psycopg.Connection[Any],
    tenant_id: int | None,
    actor: str,
    action: str,
    target: tuple[str, object],
    *,
    details: dict[str, Any] | None = None,
) -> None:
    """Record who changed what; ``target`` is (type, id) such as ("site", 12)."""
    target_type, target_id = target
    conn.execute(
        """INSERT INTO audit_log (tenant_id, actor, action, target_type, target_id, details)
           VALUES (%s, %s, %s, %s, %s, %s)""",
        (tenant_id, actor, action, target_type, str(target_id), Jsonb(details or {})),
    )


def tenant_id_by_name(conn: psycopg.Connection[Any], name: str) -> int:
    row = conn.execute("SELECT id FROM tenants WHERE name = %s", (name,)).fetchone()
    if row is None:
        raise NotFound(f"no tenant named {name!r}; create it with 'meterit-central tenant create'")
    return int(row[0])


def create_tenant(conn: psycopg.Connection[Any], name: str, actor: str) -> int:
    row = conn.execute(
        "INSERT INTO tenants (name) VALUES (%s) ON CONFLICT (name) DO NOTHING RETURNING id",
        (name,),
    ).fetchone()
    if row is None:
        raise Conflict(f"a tenant named {name!r} already exists")
    audit(conn, row[0], actor, "tenant.create", ("tenant", row[0]), details={"name": name})
    return int(row[0])


def create_site(
    conn: psycopg.Connection[Any], tenant_id: int, name: str, actor: str
) -> CreatedSite:
    """A new site with its first API key (whose plaintext the caller shows once)."""
    row = conn.execute(
        """INSERT INTO sites (tenant_id, name) VALUES (%s, %s)
           ON CONFLICT (tenant_id, name) DO NOTHING RETURNING id""",
        (tenant_id, name),
    ).fetchone()
    if row is None:
        raise Conflict(f"the tenant already has a site named {name!r}")
    site_id = int(row[0])
    key = keys.create_key(conn, site_id)
    audit(conn, tenant_id, actor, "site.create", ("site", site_id), details={"name": name})
    audit(
        conn,
        tenant_id,
        actor,
        "key.create",
        ("api_key", key.key_id),
        details={"prefix": key.prefix},
    )
    return CreatedSite(site_id, tenant_id, name, key)


def site_tenant(conn: psycopg.Connection[Any], site_id: int, tenant_id: int | None = None) -> int:
    """The site's tenant; NotFound when it does not exist or belongs to another tenant."""
    row = conn.execute("SELECT tenant_id FROM sites WHERE id = %s", (site_id,)).fetchone()
    if row is None or (tenant_id is not None and row[0] != tenant_id):
        raise NotFound(f"no site with id {site_id}")
    return int(row[0])


def rotate_key(
    conn: psycopg.Connection[Any], site_id: int, overlap: timedelta, actor: str
) -> keys.NewKey:
    tenant_id = site_tenant(conn, site_id)
    new, expiring = keys.rotate_key(conn, site_id, overlap)
    audit(
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


def revoke_keys(
    conn: psycopg.Connection[Any], site_id: int, prefix: str | None, actor: str
) -> list[str]:
    tenant_id = site_tenant(conn, site_id)
    revoked = keys.revoke_keys(conn, site_id, prefix)
    if not revoked:
        which = f"key {prefix}" if prefix else "any usable key"
        raise NotFound(f"site {site_id} has no unrevoked {which}")
    audit(conn, tenant_id, actor, "key.revoke", ("site", site_id), details={"prefixes": revoked})
    return revoked


def list_sites(conn: psycopg.Connection[Any], tenant_id: int | None = None) -> list[dict[str, Any]]:
    rows = conn.execute(
        """SELECT s.id, s.name, t.name, s.active, s.created_at, s.last_heartbeat_at,
                  (SELECT count(*) FROM meters m WHERE m.site_id = s.id AND m.active),
                  (SELECT array_agg(k.prefix ORDER BY k.id) FROM api_keys k
                   WHERE k.site_id = s.id AND k.revoked_at IS NULL
                     AND (k.expires_at IS NULL OR k.expires_at > now()))
           FROM sites s JOIN tenants t ON t.id = s.tenant_id
           WHERE %s::int IS NULL OR s.tenant_id = %s
           ORDER BY t.name, s.name""",
        (tenant_id, tenant_id),
    ).fetchall()
    return [
        {
            "id": r[0],
            "name": r[1],
            "tenant": r[2],
            "active": r[3],
            "created_at": r[4].isoformat(),
            "last_heartbeat_at": r[5].isoformat() if r[5] else None,
            "meters": r[6],
            "keys": r[7] or [],
        }
        for r in rows
    ]


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return bool(_hasher.verify(password_hash, password))
    except Exception:  # argon2 raises VerifyMismatchError / InvalidHashError
        return False


def create_user(
    conn: psycopg.Connection[Any],
    tenant_id: int,
    *,
    email: str,
    password: str,
    role: str,
    actor: str,
) -> int:
    if role not in ROLES:
        raise ValueError(f"role {role!r}: expected one of {', '.join(ROLES)}")
    if len(password) < 8:
        raise ValueError("password: use at least 8 characters")
    row = conn.execute(
        """INSERT INTO users (tenant_id, email, password_hash, role) VALUES (%s, %s, %s, %s)
           ON CONFLICT (email) DO NOTHING RETURNING id""",
        (tenant_id, email.strip().lower(), hash_password(password), role),
    ).fetchone()
    if row is None:
        raise Conflict(f"a user with e-mail {email!r} already exists")
    audit(
        conn,
        tenant_id,
        actor,
        "user.create",
        ("user", row[0]),
        details={"email": email, "role": role},
    )
    return int(row[0])
