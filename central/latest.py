"""The latest reading of every data point (``point_latest``), maintained by ingest.

Alert rules (value thresholds, no data) and pages that show "the value now" read this table of
one row per point instead of searching the readings table. Ingest keeps it in the same
statement that writes the readings (``CTE`` below), so it is never behind what is stored; a
reading older than the one kept (a backlog arriving late) does not replace it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg

# A CTE for ingest's statement: it reads the rows just inserted from a CTE named ``ins`` with
# columns (point_id, ts, value). DISTINCT ON keeps one row per point (the newest), as an
# upsert may touch each row only once per statement.
CTE = """latest AS (
    INSERT INTO point_latest (point_id, ts, value)
    SELECT DISTINCT ON (point_id) point_id, ts, value FROM ins ORDER BY point_id, ts DESC
    ON CONFLICT (point_id) DO UPDATE
        SET ts = excluded.ts, value = excluded.value, received_at = now()
        WHERE point_latest.ts < excluded.ts
)"""


def latest(
    conn: psycopg.Connection[Any], point_ids: list[int]
) -> dict[int, tuple[datetime, float]]:
    """point id -> (timestamp, value) of its newest stored reading."""
    rows = conn.execute(
        "SELECT point_id, ts, value FROM point_latest WHERE point_id = ANY(%s)", (point_ids,)
    ).fetchall()
    return {r[0]: (r[1], r[2]) for r in rows}
