"""Tenants: the organisations that own sites and users, and which tenant owns a site.

Each function runs in the caller's transaction and writes its audit entry there.
"""

from __future__ import annotations

from typing import Any

import psycopg

from central import audit
from central.alerts import rules
from central.domain_errors import Conflict, NotFound


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
    audit.record(conn, row[0], actor, "tenant.create", ("tenant", row[0]), details={"name": name})
    rules.create_defaults(conn, int(row[0]))
    return int(row[0])


def site_tenant(conn: psycopg.Connection[Any], site_id: int, tenant_id: int | None = None) -> int:
    """The site's tenant; NotFound when it does not exist or belongs to another tenant."""
    row = conn.execute("SELECT tenant_id FROM sites WHERE id = %s", (site_id,)).fetchone()
    if row is None or (tenant_id is not None and row[0] != tenant_id):
        raise NotFound(f"no site with id {site_id}")
    return int(row[0])
