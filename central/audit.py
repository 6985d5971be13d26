"""The audit log: who changed what, written in the same transaction as the change.

Every domain function that changes something records it here with the caller's connection, so
a change and its record commit together or not at all. ``actor`` is ``'cli'``, ``'demo'`` or
``'user:<email>'``.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.types.json import Jsonb


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
