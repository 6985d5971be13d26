"""The readings explorer: site, data points and a time range -> chart, table and CSV export.

Short ranges are drawn from the raw readings; longer ones from the hourly rollup (mean, min,
max per hour), so a month's chart reads ~720 rows per data point instead of tens of thousands.
The CSV export is always the raw readings of the selection and is streamed: a generator reads a
server-side cursor a few thousand rows at a time, so an export of millions of rows holds only
one chunk in memory, in the server and in PostgreSQL alike.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from flask import Response, abort, render_template, request, url_for
from psycopg_pool import ConnectionPool

from central.access import require
from central.csv_cells import text_cell
from central.database import read_pool
from central.fleet import no_jit
from central.ui import bp
from central.ui.sites import own_site
from central.ui.users import me
from common.timestamps import parse_ts

logger = logging.getLogger(__name__)

PRESETS = {
    "6h": timedelta(hours=6),
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
}
RAW_UP_TO = timedelta(hours=48)  # longer ranges are drawn from the hourly rollup
MAX_RAW_ROWS = 100_000  # a raw chart beyond this is unreadable anyway: use a longer range
MAX_POINTS = 12
TABLE_ROWS = 100
EXPORT_CHUNK = 5000


@dataclass(frozen=True, slots=True)
class Selection:
    site_id: int
    point_ids: list[int]
    start: datetime
    end: datetime
    preset: str

    @property
    def hourly(self) -> bool:
        return self.end - self.start > RAW_UP_TO


def _parse_time(raw: str, what: str) -> datetime:
    """``datetime-local`` input (no zone) is UTC, as the page says; a zone given is honoured."""
    try:
        return parse_ts(raw, what, naive_is_utc=True)
    except ValueError:
        abort(400, f"{what}: expected a date and time such as 2026-11-23T10:00 (UTC).")


def selection(now: datetime) -> Selection | None:
    site_id = request.args.get("site", type=int)
    if site_id is None:
        return None
    # ASCII digits of an int4 only: "²".isdigit() is true but int("²") fails
    point_ids = [
        int(p) for p in request.args.getlist("point") if p.isascii() and p.isdigit() and len(p) <= 9
    ][:MAX_POINTS]
    preset = request.args.get("range", "24h")
    if preset in PRESETS:
        end = now
        start = now - PRESETS[preset]
    else:
        preset = "custom"
        start = _parse_time(request.args.get("from", ""), "From")
        end = _parse_time(request.args.get("to", ""), "To")
        if end <= start:
            abort(400, "The end of the range must be after its start.")
    return Selection(site_id, point_ids, start, end, preset)


def site_points(conn: psycopg.Connection[Any], site_id: int) -> list[tuple[Any, ...]]:
    """(point id, meter external id, meter name, point name, unit, meter active) of the site."""
    return conn.execute(
        """SELECT p.id, m.external_id, m.name, p.name, p.unit, m.active AND p.active
           FROM meters m JOIN meter_points p ON p.meter_id = m.id
           WHERE m.site_id = %s ORDER BY m.external_id, p.name""",
        (site_id,),
    ).fetchall()


# The hours the rollup job has not settled yet (the last few minutes to hours), aggregated from
# the raw readings on the fly, so a month's chart reaches up to now. At most RAW_UP_TO of raw
# readings are read this way, even when the job has not run for longer.
TAIL_SQL = """
SELECT p.id, date_trunc('hour', r.ts), avg(r.value), min(r.value), max(r.value)
FROM unnest(%(points)s::int[]) AS p (id)
CROSS JOIN LATERAL (
    SELECT greatest(%(tail)s, (
        SELECT h.hour + interval '1 hour' FROM readings_hourly h
        WHERE h.point_id = p.id AND h.hour < %(end)s ORDER BY h.hour DESC LIMIT 1)) AS since
) t
JOIN readings r ON r.point_id = p.id AND r.ts >= t.since AND r.ts < %(end)s
GROUP BY 1, 2 ORDER BY 1, 2
"""


def series(conn: psycopg.Connection[Any], sel: Selection) -> dict[int, list[tuple[Any, ...]]]:
    """point id -> [(ts, value, min, max)], from the rollup or the raw readings."""
    no_jit(conn)
    if sel.hourly:
        rows = conn.execute(
            """SELECT point_id, hour, sum / n, min, max FROM readings_hourly
               WHERE point_id = ANY(%s) AND hour >= date_trunc('hour', %s::timestamptz)
                 AND hour < %s
               ORDER BY point_id, hour""",
            (sel.point_ids, sel.start, sel.end),
        ).fetchall()
        rows += conn.execute(
            TAIL_SQL,
            {
                "points": sel.point_ids,
                "tail": max(sel.start, sel.end - RAW_UP_TO),
                "end": sel.end,
            },
        ).fetchall()
    else:
        rows = conn.execute(
            """SELECT point_id, ts, value, value, value FROM readings
               WHERE point_id = ANY(%s) AND ts >= %s AND ts < %s
               ORDER BY point_id, ts LIMIT %s""",
            (sel.point_ids, sel.start, sel.end, MAX_RAW_ROWS),
        ).fetchall()
    out: dict[int, list[tuple[Any, ...]]] = {p: [] for p in sel.point_ids}
    for r in rows:
        out[r[0]].append(r[1:])
    return out


def _table(
    data: dict[int, list[tuple[Any, ...]]], chosen: list[tuple[Any, ...]]
) -> list[tuple[datetime, list[float | None]]]:
    """The newest rows, one per second as the table shows it, a column per data point: meters
    polled in the same second share a row instead of giving rows that look like duplicates."""
    by_ts: dict[datetime, list[float | None]] = {}
    for col, point in enumerate(chosen):
        for ts, value, *_ in data.get(point[0], []):
            by_ts.setdefault(ts.replace(microsecond=0), [None] * len(chosen))[col] = value
    return sorted(by_ts.items(), reverse=True)[:TABLE_ROWS]


@bp.get("/explorer")
@require("viewer")
def explorer() -> str:
    now = datetime.now(UTC).replace(microsecond=0)
    sel = selection(now)
    with read_pool().connection() as conn:
        site_rows = conn.execute(
            "SELECT id, name FROM sites WHERE tenant_id = %s ORDER BY name", (me().tenant_id,)
        ).fetchall()
        points: list[tuple[Any, ...]] = []
        data: dict[int, list[tuple[Any, ...]]] = {}
        site = None
        if sel is not None:
            site = own_site(conn, sel.site_id)
            points = site_points(conn, sel.site_id)
            known = {p[0] for p in points}
            sel = Selection(
                sel.site_id,
                [p for p in sel.point_ids if p in known],
                sel.start,
                sel.end,
                sel.preset,
            )
            if sel.point_ids:
                data = series(conn, sel)
    chosen = [p for p in points if sel and p[0] in sel.point_ids]
    chart = [
        {
            "label": f"{p[1]} / {p[3]}" + (f" ({p[4]})" if p[4] else ""),
            "unit": p[4],
            "x": [int(r[0].timestamp() * 1000) for r in data.get(p[0], [])],
            "y": [r[1] for r in data.get(p[0], [])],
        }
        for p in chosen
    ]
    export_url = url_for("ui.export_csv") + "?" + request.query_string.decode() if chosen else None
    return render_template(
        "ui/explorer.html",
        sites=site_rows,
        site=site,
        points=points,
        sel=sel,
        chosen=chosen,
        chart={
            "series": chart,
            "hourly": bool(sel and sel.hourly),
            "from": int(sel.start.timestamp() * 1000) if sel else None,
            "to": int(sel.end.timestamp() * 1000) if sel else None,
        },
        table=_table(data, chosen),
        rows=sum(len(v) for v in data.values()),
        export_url=export_url,
        presets=list(PRESETS),
    )


EXPORT_SQL = """
SELECT to_char(r.ts AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
       m.external_id, p.name, r.value, p.unit
FROM readings r JOIN meter_points p ON p.id = r.point_id JOIN meters m ON m.id = p.meter_id
WHERE r.point_id = ANY(%s) AND r.ts >= %s AND r.ts < %s
ORDER BY r.ts, m.external_id, p.name
"""


def export_rows(
    db: ConnectionPool[psycopg.Connection[Any]], sel: Selection, site_name: str
) -> Iterator[str]:
    """CSV text in chunks; the pool connection is held only while the download runs."""
    buf = io.StringIO()
    out = csv.writer(buf, lineterminator="\n")
    out.writerow(["ts", "site", "meter", "point", "value", "unit"])
    site = text_cell(site_name)
    sent = 0
    with db.connection() as conn, conn.transaction(), conn.cursor(name="meterit_export") as cur:
        cur.itersize = EXPORT_CHUNK
        cur.execute(EXPORT_SQL, (sel.point_ids, sel.start, sel.end))
        for ts, meter, point, value, unit in cur:
            # names are text anyone with operator rights chose: never let them be formulas
            out.writerow(
                (ts, site, text_cell(meter), text_cell(point), repr(value), text_cell(unit))
            )
            sent += 1
            if sent % EXPORT_CHUNK == 0:
                yield buf.getvalue()
                buf.seek(0)
                buf.truncate()
    yield buf.getvalue()
    logger.info("CSV export of %d readings of site %s", sent, sel.site_id)


@bp.get("/explorer/export.csv")
@require("viewer")
def export_csv() -> Response:
    sel = selection(datetime.now(UTC).replace(microsecond=0))
    if sel is None or not sel.point_ids:
        abort(400, "Choose a site and at least one data point to export.")
    with read_pool().connection() as conn:
        site = own_site(conn, sel.site_id)
        known = {p[0] for p in site_points(conn, sel.site_id)}
    sel = Selection(
        sel.site_id, [p for p in sel.point_ids if p in known], sel.start, sel.end, sel.preset
    )
    if not sel.point_ids:
        abort(404, "None of those data points belong to this site.")
    name = f"meterit-{site.name}-{sel.start:%Y%m%dT%H%M}-{sel.end:%Y%m%dT%H%M}.csv"
    safe = "".join(c if c.isalnum() or c in "-_.T" else "_" for c in name)
    return Response(
        export_rows(read_pool(), sel, site.name),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{safe}"'},
    )
