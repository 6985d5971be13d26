"""Readings of a few data points over a time range, at a resolution that keeps the answer small.

Resolutions: ``raw`` (the readings themselves), ``15min`` (aggregated from the raw readings:
15 minutes are few enough rows), ``hour``, ``day`` and ``month`` (aggregated from the hourly
rollup, plus the hours the rollup job has not settled yet, read raw, so a series reaches up to
now). ``auto`` picks the finest resolution whose buckets fit ``max_points``: raw when the
range holds that few readings (a bounded probe, never a count of the whole range), else the
first of 15min / hour / day / month whose number of buckets fits.

Every bucket carries mean, min, max, the number of readings and the last value (for cumulative
counters: the energy of a bucket is its last value minus the previous bucket's). Day and month
buckets start at midnight of ``tz``; the answer's timestamps are in ``tz`` too. Pages are keyset
by (point, bucket): ``after`` is the last (point id, bucket start) of the previous page.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg.rows import class_row

from central.fleet import no_jit

RESOLUTIONS = ("raw", "15min", "hour", "day", "month")
STEP = {
    "15min": timedelta(minutes=15),
    "hour": timedelta(hours=1),
    "day": timedelta(days=1),
    "month": timedelta(days=31),
}
RAW_TAIL = timedelta(hours=48)  # unsettled hours read raw at most this far back

_RAW_SQL = """
SELECT point_id, ts AS bucket, value AS mean, value AS min, value AS max, 1 AS n, value AS last
FROM readings
WHERE point_id = ANY(%(points)s::int[]) AND ts >= %(start)s AND ts < %(end)s
  AND (point_id, ts) > (%(after_point)s, %(after_ts)s)
ORDER BY point_id, ts LIMIT %(limit)s
"""

_15MIN_SQL = """
SELECT point_id, date_bin('15 minutes', ts, timestamptz '2000-01-01 00:00Z') AS bucket,
       avg(value) AS mean, min(value) AS min, max(value) AS max, count(*)::int AS n,
       (array_agg(value ORDER BY ts DESC))[1] AS last
FROM readings
WHERE point_id = ANY(%(points)s::int[]) AND ts >= %(start)s AND ts < %(end)s
  AND ts >= CASE WHEN point_id = %(after_point)s THEN %(after_ts)s + interval '15 minutes'
                 ELSE %(start)s END
  AND point_id >= %(after_point)s
GROUP BY 1, 2 ORDER BY 1, 2 LIMIT %(limit)s
"""

# hourly rows from the rollup, and for the hours after the last settled one, from the raw readings
_FROM_HOURLY_SQL = """
WITH hourly AS (
    SELECT point_id, hour, n, sum, min, max, last_ts, last_value FROM readings_hourly
    WHERE point_id = ANY(%(points)s::int[]) AND point_id >= %(after_point)s
      AND hour >= date_trunc('hour', %(start)s::timestamptz) AND hour < %(end)s
    UNION ALL
    SELECT p.id, date_trunc('hour', r.ts), count(*)::int, sum(r.value), min(r.value),
           max(r.value), max(r.ts), (array_agg(r.value ORDER BY r.ts DESC))[1]
    FROM unnest(%(points)s::int[]) AS p (id)
    CROSS JOIN LATERAL (
        SELECT greatest(%(tail)s, %(start)s, (
            SELECT h.hour + interval '1 hour' FROM readings_hourly h
            WHERE h.point_id = p.id AND h.hour < %(end)s ORDER BY h.hour DESC LIMIT 1)) AS since
    ) t
    JOIN readings r ON r.point_id = p.id AND r.ts >= t.since AND r.ts < %(end)s
    WHERE p.id >= %(after_point)s
    GROUP BY 1, 2
),
buckets AS (
    SELECT point_id, date_trunc(%(unit)s, hour AT TIME ZONE %(tz)s) AT TIME ZONE %(tz)s AS bucket,
           sum(sum) / sum(n) AS mean, min(min) AS min, max(max) AS max, sum(n)::int AS n,
           (array_agg(last_value ORDER BY last_ts DESC))[1] AS last
    FROM hourly GROUP BY 1, 2
)
SELECT * FROM buckets WHERE (point_id, bucket) > (%(after_point)s, %(after_ts)s)
ORDER BY point_id, bucket LIMIT %(limit)s
"""

_RAW_PROBE_SQL = """
SELECT count(*) FROM (
    SELECT 1 FROM unnest(%(points)s::int[]) AS p (id)
    CROSS JOIN LATERAL (
        SELECT 1 FROM readings r WHERE r.point_id = p.id AND r.ts >= %(start)s
          AND r.ts < %(end)s LIMIT %(limit)s) x
    LIMIT %(limit)s) y
"""


@dataclass(frozen=True, slots=True)
class Bucket:
    point_id: int
    bucket: datetime
    mean: float
    min: float
    max: float
    n: int
    last: float


@dataclass(frozen=True, slots=True)
class SeriesPage:
    resolution: str
    buckets: list[Bucket]
    truncated: bool


def _months(start: datetime, end: datetime) -> int:
    return (end.year - start.year) * 12 + end.month - start.month + 1


def buckets_in(resolution: str, start: datetime, end: datetime) -> int:
    """How many buckets of ``resolution`` the range spans (per data point), at most."""
    if resolution == "month":
        return _months(start, end)
    return int((end - start) / STEP[resolution]) + 1


def choose_resolution(
    conn: psycopg.Connection[Any], points: list[int], start: datetime, end: datetime, budget: int
) -> str:
    """The finest resolution whose answer for ``points`` fits ``budget`` points in all."""
    probe = conn.execute(
        _RAW_PROBE_SQL, {"points": points, "start": start, "end": end, "limit": budget + 1}
    ).fetchone()
    if probe is not None and int(probe[0]) <= budget:
        return "raw"
    for resolution in ("15min", "hour", "day", "month"):
        if buckets_in(resolution, start, end) * len(points) <= budget:
            return resolution
    return "month"


def read(
    conn: psycopg.Connection[Any],
    points: list[int],
    start: datetime,
    end: datetime,
    *,
    resolution: str,
    tz: str,
    limit: int,
    after: tuple[int, datetime] | None,
    now: datetime,
) -> SeriesPage:
    """Up to ``limit`` buckets of ``points`` (ordered by point id, then time) after ``after``."""
    if resolution not in RESOLUTIONS:
        raise ValueError(f"resolution: expected one of {', '.join(RESOLUTIONS)}")
    no_jit(conn)
    after_point, after_ts = after if after is not None else (0, start - timedelta(days=1))
    params: dict[str, Any] = {
        "points": sorted(points),
        "start": start,
        "end": end,
        "after_point": after_point,
        "after_ts": after_ts,
        "limit": limit + 1,
        "tz": tz,
        "unit": resolution,
        "tail": max(start, min(end, now) - RAW_TAIL),
    }
    sql = {"raw": _RAW_SQL, "15min": _15MIN_SQL}.get(resolution, _FROM_HOURLY_SQL)
    with conn.cursor(row_factory=class_row(Bucket)) as cur:
        rows = cur.execute(sql, params).fetchall()
    return SeriesPage(resolution, rows[:limit], truncated=len(rows) > limit)
