"""Sites: registering one (with its first API key) and listing a tenant's sites.

Each function runs in the caller's transaction and writes its audit entry there, so a change
and its record commit together or not at all. Keys are ``central.keys``; tenants
``central.tenants``; users ``central.users``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg

from central import audit, keys
from central.domain_errors import Conflict


@dataclass(frozen=True, slots=True)
class CreatedSite:
    site_id: int
    tenant_id: int
    name: str
    key: keys.NewKey


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
    audit.record(conn, tenant_id, actor, "site.create", ("site", site_id), details={"name": name})
    key = keys.create_key(conn, site_id, actor)
    return CreatedSite(site_id, tenant_id, name, key)


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
