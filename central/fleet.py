"""The figures of the fleet dashboard (per site and fleet totals), from maintained summaries.

Everything here must cost the same with two million readings as with two hundred million, so
nothing reads ``readings``: the value now of a point is its row of ``point_latest``, the counter
readings energy is computed from are rows of ``point_days`` (both kept by ingest in the
statement that writes the readings: ``central.latest``, ``central.point_days``), and the load
curve is the hourly rollup (``central.rollup``). A page reads a few rows per designated point.

Energy is read from cumulative counters: the energy of a period is the last reading in it minus
the last reading before it (or, for a counter that started inside the period, its first reading).
Summing per-hour differences would lose the step between one hour's last reading and the next
hour's first. Each meter contributes one energy point and one power point (by unit; the shortest
name wins, so ``power_kw`` and not also its phases ``power_l1_kw`` …), so nothing is counted twice.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg.rows import class_row

from central import point_days
from central.connectivity import STATES, Thresholds, connectivity
from common.heartbeat import METER_PROBLEM_STATES

# the heartbeat's meters that give no readings (only those are shown in the fleet table)
PROBLEM_METERS = "$.meters[*] ? ({})".format(
    " || ".join(f'@.state == "{state}"' for state in METER_PROBLEM_STATES)
)

# unit -> (kind, factor to kWh or kW)
UNITS: dict[str, tuple[str, float]] = {
    "Wh": ("energy", 0.001),
    "kWh": ("energy", 1.0),
    "MWh": ("energy", 1000.0),
    "W": ("power", 0.001),
    "kW": ("power", 1.0),
    "MW": ("power", 1000.0),
}
_UNITS_SQL = ", ".join(f"('{u}', '{k}', {f})" for u, (k, f) in UNITS.items())

# One energy and one power point per active meter of the tenant (see the module docstring).
DESIGNATED_SQL = f"""
SELECT DISTINCT ON (p.meter_id, u.kind) p.id, m.site_id, p.meter_id, u.kind, u.factor::float8
FROM sites s
JOIN meters m ON m.site_id = s.id AND m.active
JOIN meter_points p ON p.meter_id = m.id AND p.active
JOIN (VALUES {_UNITS_SQL}) AS u (unit, kind, factor) ON u.unit = p.unit
WHERE s.tenant_id = %s
ORDER BY p.meter_id, u.kind, length(p.name), p.name
"""
# Changes whenever a meter or data point of the tenant changes (triggers bump config_version)
# or a site is added: the key under which the designated points are cached.
CONFIG_KEY_SQL = "SELECT count(*), coalesce(sum(config_version), 0) FROM sites WHERE tenant_id = %s"
DESIGNATED_FROM = """unnest(%(ids)s::int[], %(sites)s::int[], %(meters)s::int[],
                            %(kinds)s::text[], %(factors)s::float8[])
                     AS d (id, site_id, meter_id, kind, factor)"""

SITE_FIGURES_SQL = f"""
WITH latest AS (
    SELECT d.id, d.site_id, d.meter_id, d.kind, d.factor, pl.ts, pl.value AS v
    FROM {DESIGNATED_FROM} LEFT JOIN point_latest pl ON pl.point_id = d.id
),
figures AS (
    SELECT l.site_id,
        sum(l.factor * greatest(0, l.v - {point_days.baseline("day_date", "l.id")}))
            FILTER (WHERE l.kind = 'energy' AND l.ts >= %(day)s) AS energy_today,
        sum(l.factor * greatest(0, l.v - {point_days.baseline("month_date", "l.id")}))
            FILTER (WHERE l.kind = 'energy' AND l.ts >= %(month)s) AS energy_month,
        sum(l.factor * l.v) FILTER (WHERE l.kind = 'power' AND l.ts >= %(recent)s) AS power_now,
        count(DISTINCT l.meter_id) FILTER (WHERE l.ts >= %(recent)s) AS reporting
    FROM latest l
    GROUP BY l.site_id
),
-- meters without an energy or power point answer "reporting?" from their points' latest
undesignated AS (
    SELECT m.site_id, count(*) FILTER (WHERE EXISTS (
               SELECT 1 FROM meter_points p JOIN point_latest pl ON pl.point_id = p.id
               WHERE p.meter_id = m.id AND p.active AND pl.ts >= %(recent)s)) AS reporting
    FROM sites s JOIN meters m ON m.site_id = s.id AND m.active
    WHERE s.tenant_id = %(tenant)s AND NOT m.id = ANY(%(meters)s::int[])
    GROUP BY m.site_id
),
meter_counts AS (
    SELECT m.site_id, count(*) AS meters
    FROM sites s JOIN meters m ON m.site_id = s.id AND m.active
    WHERE s.tenant_id = %(tenant)s
    GROUP BY m.site_id
)
SELECT s.id AS site_id, s.name, s.active, s.created_at, s.last_heartbeat_at,
       -- only what the table shows: a site with 100 meters sends a long status
       CASE WHEN s.last_status IS NOT NULL THEN jsonb_build_object(
           'backlog', s.last_status->'backlog',
           'oldest_unsynced_age_s', s.last_status->'oldest_unsynced_age_s',
           'dropped_readings', s.last_status->'dropped_readings',
           'collection_paused', s.last_status->'collection_paused',
           'upload_paused', s.last_status->'upload_paused',
           'versions', s.last_status->'versions',
           'meters', jsonb_path_query_array(s.last_status,
               %(problem_meters)s::jsonpath))
       END AS status,
       coalesce(c.meters, 0) AS meters,
       coalesce(f.reporting, 0) + coalesce(u.reporting, 0) AS reporting,
       f.energy_today, f.energy_month, f.power_now
FROM sites s LEFT JOIN figures f ON f.site_id = s.id LEFT JOIN meter_counts c ON c.site_id = s.id
     LEFT JOIN undesignated u ON u.site_id = s.id
WHERE s.tenant_id = %(tenant)s
ORDER BY s.name
"""

# Hourly rollup rows, and for each point the hours after its last rollup row read raw (at most
# ``POWER_RAW_TAIL`` back): the hours the rollup job has not reached yet — all of them during a
# site's first hour — so the curve reaches up to now as "Power now" does (issue #22). Only sites
# with an hour marked for the rollup in that tail can be behind (ingest marks before the rollup
# writes), so the points of the others are not probed at all.
POWER_SERIES_SQL = f"""
WITH d AS (
    SELECT * FROM {DESIGNATED_FROM}
    WHERE d.kind = 'power' AND d.site_id = ANY(%(shown)s::int[])
),
behind AS (
    SELECT DISTINCT site_id FROM readings_hourly_dirty
    WHERE site_id = ANY(%(shown)s::int[]) AND hour >= %(tail)s
),
hourly AS (
    SELECT d.id, d.factor, h.hour, h.sum / h.n AS mean
    FROM d JOIN readings_hourly h ON h.point_id = d.id AND h.hour >= %(since)s
    UNION ALL
    SELECT d.id, d.factor, date_bin('1 hour', r.ts, timestamptz '2000-01-01 00:00Z'), avg(r.value)
    FROM d JOIN behind b ON b.site_id = d.site_id
    CROSS JOIN LATERAL (
        SELECT greatest(%(tail)s, %(since)s, (
            SELECT h.hour + interval '1 hour' FROM readings_hourly h
            WHERE h.point_id = d.id ORDER BY h.hour DESC LIMIT 1)) AS start
    ) t
    JOIN readings r ON r.point_id = d.id AND r.ts >= t.start
    GROUP BY 1, 2, 3
)
SELECT hour, sum(factor * mean) AS kw FROM hourly GROUP BY hour ORDER BY hour
"""
POWER_RAW_TAIL = timedelta(hours=3)


@dataclass(frozen=True, slots=True)
class _Point:
    id: int
    site_id: int
    meter_id: int
    kind: str
    factor: float


@dataclass(frozen=True, slots=True)
class _SiteRow:
    """A row of ``SITE_FIGURES_SQL``; ``status`` is the part of the last heartbeat it shows."""

    site_id: int
    name: str
    active: bool
    created_at: datetime
    last_heartbeat_at: datetime | None
    status: dict[str, Any] | None
    meters: int
    reporting: int
    energy_today: float | None
    energy_month: float | None
    power_now: float | None


@dataclass(frozen=True, slots=True)
class _PowerHour:
    hour: datetime
    kw: float


@dataclass(frozen=True, slots=True)
class Designated:
    """The tenant's energy and power points, as parallel arrays for ``unnest``."""

    ids: list[int]
    sites: list[int]
    meters: list[int]
    kinds: list[str]
    factors: list[float]

    literals: dict[str, str] = field(default_factory=dict)

    def params(self) -> dict[str, str]:
        """The arrays as PostgreSQL array literals, made once per configuration.

        psycopg adapts a Python list element by element in Python (~8 ms for a thousand
        numbers); a text literal cast with ``::int[]`` in the query costs the server nothing.
        """
        if not self.literals:
            self.literals.update(
                ids=array_literal(self.ids),
                sites=array_literal(self.sites),
                meters=array_literal(self.meters),
                kinds=array_literal(self.kinds),
                factors=array_literal(self.factors),
            )
        return self.literals


def array_literal(values: list[Any]) -> str:
    """``{1,2,NULL}`` for numbers, None and the plain words used here (no quoting needed)."""
    return "{" + ",".join("NULL" if v is None else str(v) for v in values) + "}"


_designated_cache: dict[tuple[int, int, int], Designated] = {}
_cache_lock = threading.Lock()
CACHE_TENANTS = 256


def designated(conn: psycopg.Connection[Any], tenant_id: int) -> Designated:
    """The tenant's designated points, cached per process until its configuration changes
    (choosing them sorts every point of the tenant by name: worth doing once, not per page)."""
    row = conn.execute(CONFIG_KEY_SQL, (tenant_id,)).fetchone()
    key = (tenant_id, int(row[0]), int(row[1])) if row else (tenant_id, 0, 0)
    cached = _designated_cache.get(key)
    if cached is not None:
        return cached
    with conn.cursor(row_factory=class_row(_Point)) as cur:
        rows = cur.execute(DESIGNATED_SQL, (tenant_id,)).fetchall()
    fresh = Designated(
        [r.id for r in rows],
        [r.site_id for r in rows],
        [r.meter_id for r in rows],
        [r.kind for r in rows],
        [r.factor for r in rows],
    )
    with _cache_lock:
        for old in [k for k in _designated_cache if k[0] == tenant_id]:
            del _designated_cache[old]
        if len(_designated_cache) >= CACHE_TENANTS:
            _designated_cache.clear()
        _designated_cache[key] = fresh
    return fresh


@dataclass(slots=True)
class SiteFigures:
    site_id: int
    name: str
    active: bool
    created_at: datetime
    last_heartbeat_at: datetime | None
    state: str
    heartbeat_age_s: float | None
    backlog: int | None
    oldest_unsynced_age_s: float | None
    dropped: int | None
    unreachable: list[str]
    meters: int
    reporting: int
    energy_today: float | None
    energy_month: float | None
    power_now: float | None
    versions: dict[str, Any] = field(default_factory=dict)
    paused: list[str] = field(default_factory=list)


def _status_fields(status: dict[str, Any] | None) -> dict[str, Any]:
    """The parts of the last heartbeat body the dashboard shows (the body was checked at ingest)."""
    status = status or {}
    meters = status.get("meters") or []
    paused = [n for n in ("collection", "upload") if status.get(f"{n}_paused")]
    return {
        "backlog": status.get("backlog"),
        "oldest_unsynced_age_s": status.get("oldest_unsynced_age_s"),
        "dropped": status.get("dropped_readings"),
        "unreachable": sorted(
            str(m.get("external_id", "?"))
            for m in meters
            if isinstance(m, dict) and m.get("state") in METER_PROBLEM_STATES
        ),
        "versions": status.get("versions") if isinstance(status.get("versions"), dict) else {},
        "paused": paused,
    }


def no_jit(conn: psycopg.Connection[Any]) -> None:
    """These queries are thousands of index probes: their estimated cost passes PostgreSQL's
    ``jit_above_cost`` while they run in milliseconds, and JIT compiling them would add ~200 ms
    to every dashboard. ``SET LOCAL`` ends with the transaction the pool rolls back."""
    conn.execute("SET LOCAL jit = off")


def boundaries(now: datetime) -> tuple[datetime, datetime]:
    """Start of today and of this month, in UTC (the zone every timestamp is stored in)."""
    day = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return day, day.replace(day=1)


def site_figures(
    conn: psycopg.Connection[Any], tenant_id: int, now: datetime, limits: Thresholds
) -> list[SiteFigures]:
    day, month = boundaries(now)
    no_jit(conn)
    points = designated(conn, tenant_id)
    with conn.cursor(row_factory=class_row(_SiteRow)) as cur:
        rows = cur.execute(
            SITE_FIGURES_SQL,
            {
                "tenant": tenant_id,
                "problem_meters": PROBLEM_METERS,
                "day": day,
                "month": month,
                "day_date": day.date(),
                "month_date": month.date(),
                "recent": now - timedelta(seconds=limits.offline_s),
                **points.params(),
            },
        ).fetchall()
    out = []
    for r in rows:
        last = r.last_heartbeat_at
        out.append(
            SiteFigures(
                site_id=r.site_id,
                name=r.name,
                active=r.active,
                created_at=r.created_at,
                last_heartbeat_at=last,
                state=connectivity(last, now, limits, active=r.active),
                heartbeat_age_s=(now - last).total_seconds() if last else None,
                meters=r.meters,
                reporting=r.reporting,
                energy_today=r.energy_today,
                energy_month=r.energy_month,
                power_now=r.power_now,
                **_status_fields(r.status),
            )
        )
    return out


POWER_TTL_S = 60.0
_power_cache: dict[tuple[int, int, datetime], tuple[float, list[tuple[datetime, float]]]] = {}


def power_series(
    conn: psycopg.Connection[Any],
    tenant_id: int,
    site_ids: list[int],
    since: datetime,
    now: datetime,
) -> list[tuple[datetime, float]]:
    """Hourly mean power of the given sites, summed: the fleet's load curve, up to the current
    (unsettled) hour.

    Each computation reads tens of thousands of rollup rows and the last hours' raw readings of
    the points the rollup has not reached, so it is kept a minute per process and selection.
    """
    since = since.replace(minute=0, second=0, microsecond=0)
    key = (tenant_id, hash(tuple(site_ids)), since)
    hit = _power_cache.get(key)
    if hit is not None and time.monotonic() - hit[0] < POWER_TTL_S:
        return hit[1]
    no_jit(conn)
    with conn.cursor(row_factory=class_row(_PowerHour)) as cur:
        rows = cur.execute(
            POWER_SERIES_SQL,
            {
                "shown": array_literal(site_ids),
                "since": since,
                "tail": (now - POWER_RAW_TAIL).replace(minute=0, second=0, microsecond=0),
                **designated(conn, tenant_id).params(),
            },
        ).fetchall()
    series = [(r.hour, float(r.kw)) for r in rows]
    with _cache_lock:
        if len(_power_cache) >= CACHE_TENANTS:
            _power_cache.clear()
        _power_cache[key] = (time.monotonic(), series)
    return series


def totals(sites: list[SiteFigures]) -> dict[str, Any]:
    """The fleet's figures: sites per state and the sums of the sites' figures."""
    counts = dict.fromkeys(STATES, 0)
    for site in sites:
        counts[site.state] += 1
    return {
        "sites": len(sites),
        "states": counts,
        "energy_today": sum(s.energy_today or 0 for s in sites),
        "energy_month": sum(s.energy_month or 0 for s in sites),
        "power_now": sum(s.power_now or 0 for s in sites),
        "meters": sum(s.meters for s in sites),
        "reporting": sum(s.reporting for s in sites),
        "unreachable": sum(len(s.unreachable) for s in sites),
        "backlog": sum(s.backlog or 0 for s in sites),
        "dropped": sum(s.dropped or 0 for s in sites),
    }
