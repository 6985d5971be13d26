"""The audit log: who changed what, written in the same transaction as the change.

Every domain function that changes something records it here with the caller's connection, so
a change and its record commit together or not at all. ``actor`` is ``'cli'``, ``'demo'`` or
``'user:<email>'``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import class_row, scalar_row
from psycopg.types.json import Jsonb


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    at: datetime
    actor: str
    action: str
    target_type: str
    target_id: str
    details: dict[str, Any] | None


_ENTRY = "SELECT id, at, actor, action, target_type, target_id, details FROM audit_log"


def record(
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


def page(
    conn: psycopg.Connection[Any],
    tenant_id: int,
    *,
    before: int | None,
    action_prefix: str,
    limit: int,
) -> list[AuditEntry]:
    """The tenant's entries, newest first, older than entry ``before`` (keyset paging), whose
    action starts with ``action_prefix`` ('' for all)."""
    with conn.cursor(row_factory=class_row(AuditEntry)) as cur:
        return cur.execute(
            _ENTRY
            + """ WHERE tenant_id = %(tenant)s
                    AND (%(before)s::bigint IS NULL OR id < %(before)s)
                    AND (%(action)s = '' OR action LIKE %(prefix)s)
                  ORDER BY id DESC LIMIT %(limit)s""",
            {
                "tenant": tenant_id,
                "before": before,
                "action": action_prefix,
                "prefix": action_prefix.replace("%", r"\%").replace("_", r"\_") + "%",
                "limit": limit,
            },
        ).fetchall()


def actions(conn: psycopg.Connection[Any], tenant_id: int) -> list[str]:
    """Every action the tenant's log holds (for a filter)."""
    with conn.cursor(row_factory=scalar_row) as cur:
        return cur.execute(
            "SELECT DISTINCT action FROM audit_log WHERE tenant_id = %s ORDER BY 1", (tenant_id,)
        ).fetchall()


def about_site(
    conn: psycopg.Connection[Any],
    tenant_id: int,
    site_id: int,
    *,
    meter_ids: list[int],
    key_ids: list[int],
    limit: int,
) -> list[AuditEntry]:
    """Recent entries about the site, its meters and its keys, newest first."""
    with conn.cursor(row_factory=class_row(AuditEntry)) as cur:
        return cur.execute(
            _ENTRY
            + """ WHERE tenant_id = %(tenant)s AND (
                      (target_type = 'site' AND target_id = %(site)s)
                      OR details->>'site_id' = %(site)s
                      OR (target_type = 'meter' AND target_id = ANY(%(meters)s))
                      OR (target_type = 'api_key' AND target_id = ANY(%(keys)s)))
                  ORDER BY at DESC, id DESC LIMIT %(limit)s""",
            {
                "tenant": tenant_id,
                "site": str(site_id),
                "meters": [str(i) for i in meter_ids],
                "keys": [str(i) for i in key_ids],
                "limit": limit,
            },
        ).fetchall()
