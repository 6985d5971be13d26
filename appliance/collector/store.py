"""Writes one poll cycle in one transaction: its readings and each meter's current status."""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

from appliance.collector.poll import MeterResult

_STATUS_UPSERT = """
INSERT INTO meter_status AS s (meter_id, state, state_since, last_reading_at, last_error,
                               last_error_at, consecutive_failures, point_errors, updated_at)
VALUES (%(meter_id)s, %(state)s, now(), %(read_at)s, %(error)s,
        CASE WHEN %(error)s::text IS NULL THEN NULL ELSE now() END,
        %(failures)s, %(point_errors)s, now())
ON CONFLICT (meter_id) DO UPDATE SET
    state = EXCLUDED.state,
    state_since = CASE WHEN s.state = EXCLUDED.state THEN s.state_since ELSE now() END,
    last_reading_at = COALESCE(EXCLUDED.last_reading_at, s.last_reading_at),
    last_error = COALESCE(EXCLUDED.last_error, s.last_error),
    last_error_at = COALESCE(EXCLUDED.last_error_at, s.last_error_at),
    consecutive_failures = CASE WHEN EXCLUDED.state = 'reachable' THEN 0
                                ELSE s.consecutive_failures + 1 END,
    point_errors = EXCLUDED.point_errors,
    updated_at = now()
"""


def _status_row(result: MeterResult) -> dict[str, Any]:
    error = result.error
    if error is None and result.point_errors and not result.values:
        error = "every point failed: " + "; ".join(
            f"{name}: {why}" for name, why in sorted(result.point_errors.items())
        )
    return {
        "meter_id": result.meter.meter_id,
        "state": "reachable" if result.reachable else "unreachable",
        "read_at": result.read_at if result.values else None,
        "error": error,
        "failures": 0 if result.reachable else 1,
        "point_errors": Jsonb(result.point_errors),
    }


async def write_cycle(conn: AsyncConnection[Any], results: list[MeterResult]) -> int:
    """Commit the cycle's readings with COPY and the meters' status, all or nothing.

    Returns the number of readings written."""
    rows = 0
    async with conn.transaction(), conn.cursor() as cur:
        async with cur.copy("COPY readings (meter_id, point_id, ts, value) FROM STDIN") as copy:
            for result in results:
                for point_id, value in result.values.items():
                    await copy.write_row((result.meter.meter_id, point_id, result.read_at, value))
                    rows += 1
        await cur.executemany(_STATUS_UPSERT, [_status_row(r) for r in results])
    return rows
