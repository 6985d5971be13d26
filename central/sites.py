"""Sites: registering one (with its first API key) and listing a tenant's sites.

Each function runs in the caller's transaction and writes its audit entry there, so a change
and its record commit together or not at all. Keys are ``central.keys``; tenants
``central.tenants``; users ``central.users``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import class_row

from central import audit, keys
from central.domain_errors import Conflict


@dataclass(frozen=True, slots=True)
class SiteSummary:
    """A line of the site list: the site, its tenant, its active meters and usable keys."""

    id: int
    name: str
    tenant: str
    active: bool
    created_at: datetime
    last_heartbeat_at: datetime | None
    meters: int
    keys: list[str]

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "tenant": self.tenant,
            "active": self.active,
            "created_at": self.created_at.isoformat(),
            "last_heartbeat_at": (
                self.last_heartbeat_at.isoformat() if self.last_heartbeat_at else None
            ),
            "meters": self.meters,
            "keys": self.keys,
        }


@dataclass(frozen=True, slots=True)
class Site:
    """One site with its last heartbeat: what its page and its status answer show."""

    id: int
    name: str
    active: bool
    created_at: datetime
    last_heartbeat_at: datetime | None
    last_status: dict[str, Any] | None
    config_version: int


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


def list_sites(conn: psycopg.Connection[Any], tenant_id: int | None = None) -> list[SiteSummary]:
    with conn.cursor(row_factory=class_row(SiteSummary)) as cur:
        return cur.execute(
            """SELECT s.id, s.name, t.name AS tenant, s.active, s.created_at, s.last_heartbeat_at,
                      (SELECT count(*) FROM meters m WHERE m.site_id = s.id AND m.active) AS meters,
                      coalesce((SELECT array_agg(k.prefix ORDER BY k.id) FROM api_keys k
                                WHERE k.site_id = s.id AND k.revoked_at IS NULL
                                  AND (k.expires_at IS NULL OR k.expires_at > now())),
                               '{}') AS keys
               FROM sites s JOIN tenants t ON t.id = s.tenant_id
               WHERE %s::int IS NULL OR s.tenant_id = %s
               ORDER BY t.name, s.name""",
            (tenant_id, tenant_id),
        ).fetchall()


def tenant_site(conn: psycopg.Connection[Any], site_id: int, tenant_id: int) -> Site | None:
    """The tenant's site by id; None when there is none (or it is another tenant's)."""
    with conn.cursor(row_factory=class_row(Site)) as cur:
        return cur.execute(
            """SELECT id, name, active, created_at, last_heartbeat_at, last_status, config_version
               FROM sites WHERE id = %s AND tenant_id = %s""",
            (site_id, tenant_id),
        ).fetchone()
