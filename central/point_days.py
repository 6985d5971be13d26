"""Each data point's first and last reading of each UTC day (``point_days``), kept by ingest.

The fleet dashboard's energy today and this month come from counters: the last reading of the
period minus the last one before it (or, for a counter that began inside the period, its first
reading). With this table each of those is one index probe per point, whatever the number of
readings, and it is never behind what is stored: ingest keeps it in the statement that writes
the readings (``CTE`` below), as it keeps ``point_latest``. First and last of a day do not
depend on the order readings arrive in, so late and out-of-order batches keep it exact, and a
duplicate (not inserted) never reaches it. Migration 0012 backfills it with
``point_summaries_rebuild``, which whatever writes readings without ingest calls too.
"""

from __future__ import annotations

from typing import Any

import psycopg

# A CTE for ingest's statement, over the rows just inserted (``ins``: point_id, ts, value).
# One row per point and day of the batch; a stored day only moves its ends outwards. In an
# upsert's SET every column names the row as it was, so each CASE compares with the old ends.
CTE = """days AS (
    INSERT INTO point_days AS d (point_id, day, first_ts, first_value, last_ts, last_value)
    SELECT point_id, day, min(ts), (array_agg(value ORDER BY ts))[1],
           max(ts), (array_agg(value ORDER BY ts DESC))[1]
    FROM (SELECT point_id, (ts AT TIME ZONE 'UTC')::date AS day, ts, value FROM ins) i
    GROUP BY point_id, day ORDER BY point_id, day
    ON CONFLICT (point_id, day) DO UPDATE SET
        first_ts = least(d.first_ts, excluded.first_ts),
        first_value = CASE WHEN excluded.first_ts < d.first_ts
                           THEN excluded.first_value ELSE d.first_value END,
        last_ts = greatest(d.last_ts, excluded.last_ts),
        last_value = CASE WHEN excluded.last_ts > d.last_ts
                          THEN excluded.last_value ELSE d.last_value END
        WHERE excluded.first_ts < d.first_ts OR excluded.last_ts > d.last_ts
)"""


def baseline(boundary: str, point: str) -> str:
    """SQL for the counter reading a period starting at the date parameter ``boundary`` starts
    from: the last reading before it, else (a counter that began inside the period) its first
    reading in it. Two index probes of ``point_days``; COALESCE runs the second only if needed."""
    return f"""coalesce(
        (SELECT b.last_value FROM point_days b WHERE b.point_id = {point}
           AND b.day < %({boundary})s ORDER BY b.day DESC LIMIT 1),
        (SELECT b.first_value FROM point_days b WHERE b.point_id = {point}
           AND b.day >= %({boundary})s ORDER BY b.day LIMIT 1))"""


def rebuild(conn: psycopg.Connection[Any], point_ids: list[int]) -> None:
    """Recompute ``point_days`` and ``point_latest`` of these points from their readings."""
    conn.execute("SELECT point_summaries_rebuild(%s::int[])", (point_ids,))
