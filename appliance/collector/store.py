"""Writes one poll cycle in one transaction: its readings and each meter's current status."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

from appliance.collector.backfill import REOPENED_GAP
from appliance.collector.poll import REACHABLE, MeterResult

_STATUS_UPSERT = """
INSERT INTO meter_status AS s (meter_id, state, state_since, last_reading_at, last_error,
                               last_error_at, consecutive_failures, point_errors,
                               rpm_refused_at, points_read_total, points_failed_total,
                               updated_at)
VALUES (%(meter_id)s, %(state)s, now(), %(read_at)s, %(error)s,
        CASE WHEN %(error)s::text IS NULL THEN NULL ELSE now() END,
        %(failures)s, %(point_errors)s, %(rpm_refused_at)s, %(read)s, %(failed)s, now())
ON CONFLICT (meter_id) DO UPDATE SET
    state = EXCLUDED.state,
    state_since = CASE WHEN s.state = EXCLUDED.state THEN s.state_since ELSE now() END,
    last_reading_at = COALESCE(EXCLUDED.last_reading_at, s.last_reading_at),
    last_error = COALESCE(EXCLUDED.last_error, s.last_error),
    last_error_at = COALESCE(EXCLUDED.last_error_at, s.last_error_at),
    consecutive_failures = CASE WHEN EXCLUDED.state = 'reachable' THEN 0
                                ELSE s.consecutive_failures + 1 END,
    point_errors = EXCLUDED.point_errors,
    rpm_refused_at = EXCLUDED.rpm_refused_at,
    points_read_total = s.points_read_total + EXCLUDED.points_read_total,
    points_failed_total = s.points_failed_total + EXCLUDED.points_failed_total,
    updated_at = now()
"""


def _status_row(result: MeterResult, rpm_refused_at: datetime | None) -> dict[str, Any]:
    state = result.state
    return {
        "meter_id": result.meter.meter_id,
        "state": state,
        "read_at": result.read_at if result.values else None,
        "error": result.problem,
        "failures": 0 if state == REACHABLE else 1,
        "point_errors": Jsonb(result.point_errors),
        "rpm_refused_at": rpm_refused_at,
        # for /metrics: a meter that did not answer failed every point it was asked for
        "read": len(result.values),
        "failed": len(result.meter.points) if result.error else len(result.point_errors),
    }


def _nothing_learned(result: MeterResult) -> datetime | None:
    return None


async def write_cycle(
    conn: AsyncConnection[Any],
    results: list[MeterResult],
    rpm_refused_at: Callable[[MeterResult], datetime | None] = _nothing_learned,
    backfill_days: int = 0,
) -> int:
    """Commit the cycle's readings with COPY and the meters' status, all or nothing.
    ``rpm_refused_at`` tells what the device client learned of each meter's ReadPropertyMultiple,
    so that the next start knows it without asking again; with ``backfill_days``, a meter
    answering again opens a gap to read back from its trend logs (at most that many days).

    Returns the number of readings written."""
    rows = 0
    async with conn.transaction(), conn.cursor() as cur:
        async with cur.copy("COPY readings (meter_id, point_id, ts, value) FROM STDIN") as copy:
            for result in results:
                for point_id, value in result.values.items():
                    await copy.write_row((result.meter.meter_id, point_id, result.read_at, value))
                    rows += 1
        reopened = [
            {
                "meter_id": r.meter.meter_id,
                "state": r.state,
                "read_at": r.read_at,
                "oldest": r.read_at - timedelta(days=backfill_days),
            }
            for r in results
            if r.state == REACHABLE
        ]
        if backfill_days > 0 and reopened:
            await cur.executemany(REOPENED_GAP, reopened)
        await cur.executemany(_STATUS_UPSERT, [_status_row(r, rpm_refused_at(r)) for r in results])
    return rows
