"""Readings on the appliance for one meter over a bounded time range, one page at a time.

Shared by the local web UI and the MCP server, so both answer the same question the same way.
A query must name a meter, a start and an end (at most ``MAX_SPAN``) and a page size (at most
``MAX_LIMIT``): an open-ended query on a small appliance could read millions of rows while the
collector is writing, so it is refused with a message that says what to change instead.

Pages are keyset-paginated on (timestamp, reading id): ``next_cursor`` is an opaque token for the
page after the last item, stable while new readings arrive (they only ever append).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypedDict

import psycopg
from psycopg.rows import class_row

from appliance.settings import ApplianceSettings
from common import db

MAX_LIMIT = 1000
MAX_SPAN = timedelta(days=31)
_KNOWN_SHOWN = 20  # how many known meters / points an error message lists


class ReadingsQueryError(ValueError):
    """The query cannot be answered as asked; the message says what to change."""


class UnknownMeter(ReadingsQueryError):
    pass


class UnknownPoint(ReadingsQueryError):
    pass


class Reading(TypedDict):
    ts: datetime
    point: str
    unit: str
    value: float
    synced: bool  # already stored centrally


@dataclass(frozen=True)
class _ReadingRow:
    id: int  # the keyset's tie-breaker, for the cursor
    ts: datetime
    point: str
    unit: str
    value: float
    synced: bool

    def reading(self) -> Reading:
        return {
            "ts": self.ts,
            "point": self.point,
            "unit": self.unit,
            "value": self.value,
            "synced": self.synced,
        }


@dataclass(frozen=True)
class _PointRow:
    id: int
    name: str


class ReadingsPage(TypedDict):
    meter: str
    point: str | None
    start: datetime
    end: datetime
    items: list[Reading]
    next_cursor: str | None  # None on the last page


def _encode_cursor(ts: datetime, reading_id: int) -> str:
    raw = f"{ts.isoformat()}|{reading_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        ts_text, id_text = raw.split("|")
        ts = datetime.fromisoformat(ts_text)
        if ts.tzinfo is None:
            raise ValueError
        return ts, int(id_text)
    except (ValueError, UnicodeDecodeError, binascii.Error):
        raise ReadingsQueryError(
            f"cursor {cursor[:40]!r} is not one this appliance issued; pass next_cursor from "
            "the previous page unchanged, or leave it out to start at the first page"
        ) from None


def check_query(start: datetime, end: datetime, limit: int) -> None:
    """Refuse what cannot be answered before touching the database."""
    if not 1 <= limit <= MAX_LIMIT:
        raise ReadingsQueryError(
            f"limit {limit} is out of range: ask for 1 to {MAX_LIMIT} readings per page and "
            "follow next_cursor for more"
        )
    for name, value in (("start", start), ("end", end)):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ReadingsQueryError(
                f"{name} {value.isoformat()} has no time zone; give it with an offset, "
                "e.g. 2026-11-23T10:00:00Z"
            )
    if start >= end:
        raise ReadingsQueryError(
            f"start {start.isoformat()} is not before end {end.isoformat()}; the range is "
            "[start, end): swap them or widen the range"
        )
    if end - start > MAX_SPAN:
        raise ReadingsQueryError(
            f"the range {start.isoformat()} to {end.isoformat()} spans {end - start}, more than "
            f"{MAX_SPAN.days} days; narrow it, or query successive windows of at most "
            f"{MAX_SPAN.days} days"
        )


def _listing(names: list[str]) -> str:
    shown = ", ".join(names[:_KNOWN_SHOWN])
    more = len(names) - _KNOWN_SHOWN
    return shown + (f" and {more} more" if more > 0 else "") if names else "none"


def _point_ids(conn: psycopg.Connection[Any], meter: str, point: str | None) -> list[int]:
    row = conn.execute("SELECT id FROM meters WHERE external_id = %s", (meter,)).fetchone()
    if row is None:
        known = [r[0] for r in conn.execute("SELECT external_id FROM meters ORDER BY external_id")]
        raise UnknownMeter(
            f"unknown meter {meter!r}; give a meter's external id, known meters: {_listing(known)}"
        )
    points = (
        conn.cursor(row_factory=class_row(_PointRow))
        .execute("SELECT id, name FROM meter_points WHERE meter_id = %s ORDER BY name", (row[0],))
        .fetchall()
    )
    if point is None:
        return [p.id for p in points]
    chosen = [p.id for p in points if p.name == point]
    if not chosen:
        raise UnknownPoint(
            f"meter {meter!r} has no data point {point!r}; its points are: "
            f"{_listing([p.name for p in points])} (or leave the point out for all of them)"
        )
    return chosen


def _query(
    conn: psycopg.Connection[Any],
    meter: str,
    *,
    point: str | None,
    start: datetime,
    end: datetime,
    limit: int,
    after: tuple[datetime, int] | None,
) -> ReadingsPage:
    point_ids = _point_ids(conn, meter, point)
    params: dict[str, Any] = {"points": point_ids, "start": start, "end": end, "n": limit + 1}
    keyset = ""
    if after is not None:
        keyset = "AND (r.ts, r.id) > (%(after_ts)s, %(after_id)s)"
        params.update(after_ts=after[0], after_id=after[1])
    rows = (
        conn.cursor(row_factory=class_row(_ReadingRow))
        .execute(
            f"""SELECT r.id, r.ts, p.name AS point, p.unit, r.value,
                   NOT EXISTS (SELECT 1 FROM upload_queue q WHERE q.id = r.id) AS synced
            FROM readings r JOIN meter_points p ON p.id = r.point_id
            WHERE r.point_id = ANY(%(points)s) AND r.ts >= %(start)s AND r.ts < %(end)s
              {keyset}
            ORDER BY r.ts, r.id LIMIT %(n)s""",
            params,
        )
        .fetchall()
    )
    more = len(rows) > limit
    rows = rows[:limit]
    return {
        "meter": meter,
        "point": point,
        "start": start,
        "end": end,
        "items": [r.reading() for r in rows],
        "next_cursor": _encode_cursor(rows[-1].ts, rows[-1].id) if more else None,
    }


def query_readings(
    settings_or_conn: ApplianceSettings | psycopg.Connection[Any],
    meter: str,
    *,
    point: str | None = None,
    start: datetime,
    end: datetime,
    limit: int,
    cursor: str | None = None,
) -> ReadingsPage:
    """One page of ``meter``'s readings (of one data point, or all when ``point`` is None) with
    ``start <= ts < end``, oldest first.

    Raises ReadingsQueryError (a ValueError) naming what to change: an unknown meter or point,
    an inverted, open or too long range, a page size out of range, or a foreign cursor.
    """
    check_query(start, end, limit)
    after = _decode_cursor(cursor) if cursor else None
    if isinstance(settings_or_conn, psycopg.Connection):
        return _query(
            settings_or_conn, meter, point=point, start=start, end=end, limit=limit, after=after
        )
    with db.connect(
        settings_or_conn.database_url, application_name="meterit-readings", autocommit=True
    ) as conn:
        return _query(conn, meter, point=point, start=start, end=end, limit=limit, after=after)
