"""The reads the local UI needs beyond ``appliance.service`` and
``appliance.readings_query``: the newest value of every point, and downsampled chart series.

Both are shaped by the dashboard's budget (< 100 ms with ~10 million stored readings): the
newest values are one backwards probe of ``readings_point_ts`` per point, and a chart series
is one point over a bounded range, averaged per time bucket in the database so a week of
one-per-minute readings travels as a few hundred buckets.
"""

from __future__ import annotations

import threading
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
           LEFT JOIN LATERAL (
               SELECT ts, value FROM readings r
               WHERE r.point_id = p.id ORDER BY ts DESC LIMIT 1
           ) l ON true
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


# what changes whenever the newest values can have: the collector stamps every polled meter's
# status in the same transaction as its readings, and meter-config changes touch meters/points
VERSION_SQL = """SELECT (SELECT max(updated_at) FROM meter_status),
                        (SELECT max(updated_at) FROM meters),
                        (SELECT count(*) FROM meter_points WHERE active)"""


class LatestValuesCache:
    """The newest values, re-read only after the collector has committed a new poll cycle.

    A dashboard refreshes every few seconds but meters are polled once a minute by default: most
    refreshes would re-probe ~1000 index entries for the same answer. The version check is three
    tiny aggregates; any collector commit or meter change forces a fresh read.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._version: tuple[Any, ...] | None = None
        self._values: dict[int, list[LatestValue]] = {}

    def get(self, conn: psycopg.Connection[Any]) -> dict[int, list[LatestValue]]:
        row = conn.execute(VERSION_SQL).fetchone()
        version = tuple(row) if row else None
        with self._lock:
            if version is not None and version == self._version:
                return self._values
        values = latest_values(conn)
        with self._lock:
            self._version, self._values = version, values
        return values
