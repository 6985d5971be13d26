"""The reads the local UI needs beyond ``appliance.service`` and
``appliance.readings_query``: the newest value of every point, and downsampled chart series.

Both are shaped by the dashboard's budget (the same p95 whatever the number of stored readings):
the newest values are the rows of ``point_latest``, one per point, which triggers on readings
keep (edge migration 0008); a chart series is one point over a bounded range, averaged per time
bucket in the database so a week of one-per-minute readings travels as a few hundred buckets.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypedDict

import psycopg
from psycopg.rows import class_row

from appliance.readings_query import MAX_SPAN, ReadingsQueryError, UnknownMeter, UnknownPoint
from common.timestamps import parse_ts

DEFAULT_BUCKETS = 300
# widths a person reads without arithmetic; the smallest that fits the bucket budget is used
NICE_BUCKETS_S = (1, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600)
# a fixed origin: the same minute always falls in the same bucket, so a refreshing chart is steady
BIN_ORIGIN = datetime(2000, 1, 1, tzinfo=UTC)


class LatestValue(TypedDict):
    point: str
    unit: str
    ts: datetime | None
    value: float | None


class Series(TypedDict):
    meter: str
    point: str
    unit: str
    start: datetime
    end: datetime
    bucket_s: int
    t: list[float]  # bucket starts, Unix seconds (what the chart library takes)
    avg: list[float]
    min: list[float]
    max: list[float]


def latest_values(
    conn: psycopg.Connection[Any], meter_ids: list[int] | None = None
) -> dict[int, list[LatestValue]]:
    """The newest reading of each active point of the (given) active meters, by meter id."""
    rows = conn.execute(
        """SELECT p.meter_id, p.name, p.unit, l.ts, l.value
           FROM meter_points p
           JOIN meters m ON m.id = p.meter_id
           LEFT JOIN point_latest l ON l.point_id = p.id
           WHERE p.active AND m.active AND (%(all)s OR p.meter_id = ANY(%(ids)s))
           ORDER BY p.meter_id, p.object_instance, p.id""",
        {"all": meter_ids is None, "ids": meter_ids or []},
    ).fetchall()
    out: dict[int, list[LatestValue]] = {}
    for meter_id, name, unit, ts, value in rows:
        out.setdefault(meter_id, []).append({"point": name, "unit": unit, "ts": ts, "value": value})
    return out


def bucket_seconds(start: datetime, end: datetime, max_buckets: int = DEFAULT_BUCKETS) -> int:
    """The smallest "nice" bucket width that keeps ``[start, end)`` within ``max_buckets``."""
    span = (end - start).total_seconds()
    for width in NICE_BUCKETS_S:
        if span / width <= max_buckets:
            return width
    return NICE_BUCKETS_S[-1]


def _point(conn: psycopg.Connection[Any], meter: str, point: str) -> tuple[int, str]:
    row = conn.execute(
        "SELECT p.id, p.unit FROM meters m JOIN meter_points p ON p.meter_id = m.id"
        " WHERE m.external_id = %s AND p.name = %s",
        (meter, point),
    ).fetchone()
    if row is not None:
        return int(row[0]), str(row[1])
    if conn.execute("SELECT 1 FROM meters WHERE external_id = %s", (meter,)).fetchone() is None:
        raise UnknownMeter(f"unknown meter {meter!r}; give a meter's external id")
    raise UnknownPoint(f"meter {meter!r} has no data point {point!r}")


@dataclass(frozen=True)
class _Bucket:
    t: float  # the bucket's start, epoch seconds
    avg: float
    min: float
    max: float


def series(
    conn: psycopg.Connection[Any],
    meter: str,
    point: str,
    start: datetime,
    end: datetime,
    *,
    max_buckets: int = DEFAULT_BUCKETS,
) -> Series:
    """One point's average / min / max per time bucket over ``[start, end)``, for a chart."""
    if start.tzinfo is None or end.tzinfo is None or start >= end:
        raise ReadingsQueryError("give a start before the end, both with a time zone")
    if end - start > MAX_SPAN:
        raise ReadingsQueryError(f"a chart spans at most {MAX_SPAN.days} days; narrow the range")
    width = bucket_seconds(start, end, max_buckets)
    point_id, unit = _point(conn, meter, point)
    rows = (
        conn.cursor(row_factory=class_row(_Bucket))
        .execute(
            """SELECT extract(epoch FROM date_bin(%(width)s, ts, %(origin)s))::float8 AS t,
                  avg(value) AS avg, min(value) AS min, max(value) AS max
           FROM readings
           WHERE point_id = %(point)s AND ts >= %(start)s AND ts < %(end)s
           GROUP BY t ORDER BY t""",
            {
                "width": timedelta(seconds=width),
                "origin": BIN_ORIGIN,
                "point": point_id,
                "start": start,
                "end": end,
            },
        )
        .fetchall()
    )
    return {
        "meter": meter,
        "point": point,
        "unit": unit,
        "start": start,
        "end": end,
        "bucket_s": width,
        "t": [r.t for r in rows],
        "avg": [r.avg for r in rows],
        "min": [r.min for r in rows],
        "max": [r.max for r in rows],
    }


def parse_time(text: str | None, name: str) -> datetime | None:
    """An ISO 8601 timestamp from a query string (a '+' may arrive as a space)."""
    if not text:
        return None
    try:
        return parse_ts(text.strip().replace(" ", "+"), name)
    except ValueError as err:
        raise ReadingsQueryError(str(err)) from None
