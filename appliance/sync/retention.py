"""Retention and overflow: what leaves the edge database other than by upload.

A reading stays for ``retention_days`` after its own time ``ts`` (the local UI charts them by
time), then is pruned once it is synced. Unsynced readings (still in ``upload_queue``, whatever
their age) are never pruned — except past the optional buffer budget, where the oldest
are dropped, counted per meter and time range in ``dropped_readings`` and in
``appliance_state.dropped_total`` (reported by the heartbeat and the UI), and logged.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import psycopg

from appliance import backlog
from appliance.locks import take_claim_turn
from appliance.settings import ApplianceSettings
from common import db
from common.logs import fields

logger = logging.getLogger(__name__)

PRUNE_CHUNK = 50_000  # rows per delete, so a week of backlog never becomes one huge transaction


@dataclass
class RetentionResult:
    pruned: int = 0
    dropped: int = 0


def commit_prune(conn: psycopg.Connection[Any], retention_days: int) -> int:
    """Delete synced readings older than the retention window; returns how many."""
    total = 0
    while True:
        cur = conn.execute(
            """DELETE FROM readings WHERE id = ANY(ARRAY(
                   SELECT r.id FROM readings r
                   WHERE r.ts < now() - make_interval(days => %s)
                     AND NOT EXISTS (SELECT 1 FROM upload_queue q WHERE q.id = r.id)
                   LIMIT %s))""",
            (retention_days, PRUNE_CHUNK),
        )
        conn.commit()
        total += cur.rowcount
        if cur.rowcount < PRUNE_CHUNK:
            break
    if total:
        logger.info("pruned %d synced readings older than %d days", total, retention_days)
    return total


def commit_budget(conn: psycopg.Connection[Any], budget_rows: int) -> int:
    """Drop the oldest unsynced readings beyond ``budget_rows`` (0 = no budget); returns how many.

    Readings in flight (leased to an upload batch) are never dropped: central may already have
    them, and dropping them would break the batch's exactly-once settlement.
    """
    if budget_rows <= 0:
        return 0
    excess = backlog.count(conn) - budget_rows
    if excess <= 0:
        conn.commit()
        return 0
    take_claim_turn(conn)  # no upload claim picks these rows while they are being dropped
    per_meter = conn.execute(
        """WITH gone AS (
               DELETE FROM readings WHERE id = ANY(ARRAY(
                   SELECT q.id FROM upload_queue q
                   WHERE NOT EXISTS (SELECT 1 FROM upload_batches b
                                     WHERE q.id BETWEEN b.first_id AND b.last_id)
                   ORDER BY q.id LIMIT %s))
               RETURNING meter_id, ts)
           SELECT meter_id, min(ts), max(ts), count(*) FROM gone GROUP BY meter_id
           ORDER BY meter_id""",
        (excess,),
    ).fetchall()
    dropped = sum(int(r[3]) for r in per_meter)
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO dropped_readings (meter_id, from_ts, to_ts, row_count)"
            " VALUES (%s, %s, %s, %s)",
            per_meter,
        )
    conn.execute(
        "UPDATE appliance_state SET dropped_total = dropped_total + %s, updated_at = now()",
        (dropped,),
    )
    conn.commit()
    for meter_id, from_ts, to_ts, count in per_meter:
        logger.warning(
            "buffer budget of %d unsynced readings exceeded: dropped %d readings of meter %d "
            "from %s to %s; central cannot be reached or is too slow — restore the link or "
            "raise METERIT_BUFFER_BUDGET_ROWS",
            budget_rows,
            count,
            meter_id,
            from_ts.isoformat(),
            to_ts.isoformat(),
            extra=fields(meter_id=meter_id),
        )
    return dropped


def run(settings: ApplianceSettings) -> RetentionResult:
    with db.connect(settings.database_url, application_name="meterit-retention") as conn:
        return RetentionResult(
            pruned=commit_prune(conn, settings.retention_days),
            dropped=commit_budget(conn, settings.buffer_budget_rows),
        )


def enforce_budget_for(settings: ApplianceSettings) -> int:
    if settings.buffer_budget_rows <= 0:
        return 0
    with db.connect(settings.database_url, application_name="meterit-retention") as conn:
        return commit_budget(conn, settings.buffer_budget_rows)
