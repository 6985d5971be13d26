"""Finding meters across a tenant's sites: by site, name, data point and state, a page at a time.

The state is what the site's appliance last reported for the meter (``meter_health``, kept with
each heartbeat); a meter no heartbeat has mentioned yet is ``unknown``. Pages are keyset by
meter id, so a page costs the same however deep it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import class_row

from common.heartbeat import METER_STATES

STATES = METER_STATES
MAX_POINTS_SHOWN = 40  # a meter with more data points lists these and says how many in all

_SQL = """
SELECT m.id, m.site_id, s.name AS site_name, m.external_id, m.name, m.active,
       coalesce(h.state, 'unknown') AS state, h.since AS state_since, h.last_error,
       (SELECT count(*) FROM meter_points p WHERE p.meter_id = m.id AND p.active)::int
           AS point_count,
       coalesce((SELECT array_agg(p.name || '|' || p.unit ORDER BY p.name) FROM (
           SELECT p.name, p.unit FROM meter_points p WHERE p.meter_id = m.id AND p.active
           ORDER BY p.name LIMIT %(shown)s) p), '{}') AS points
FROM meters m JOIN sites s ON s.id = m.site_id
LEFT JOIN meter_health h ON h.meter_id = m.id
WHERE s.tenant_id = %(tenant)s AND m.id > %(after)s
  AND (%(site)s::int IS NULL OR m.site_id = %(site)s)
  AND (%(active)s::bool IS NULL OR m.active = %(active)s)
  AND (%(name)s::text IS NULL OR m.external_id ILIKE %(like)s OR m.name ILIKE %(like)s)
  AND (%(point)s::text IS NULL OR EXISTS (
      SELECT 1 FROM meter_points p WHERE p.meter_id = m.id AND p.active AND p.name = %(point)s))
  AND (%(state)s::text IS NULL OR coalesce(h.state, 'unknown') = %(state)s)
ORDER BY m.id LIMIT %(limit)s
"""


@dataclass(frozen=True, slots=True)
class FoundMeter:
    id: int
    site_id: int
    site_name: str
    external_id: str
    name: str
    active: bool
    state: str
    state_since: datetime | None
    last_error: str | None
    point_count: int
    points: list[str]  # "name|unit"


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", r"\%").replace("_", r"\_")
    return f"%{escaped}%"


def search(
    conn: psycopg.Connection[Any],
    tenant_id: int,
    *,
    site_id: int | None = None,
    name: str | None = None,
    point: str | None = None,
    state: str | None = None,
    active: bool | None = True,
    after: int = 0,
    limit: int = 50,
) -> tuple[list[FoundMeter], bool]:
    """The tenant's meters matching every filter given, by id after ``after``; and whether
    more follow."""
    if state is not None and state not in STATES:
        raise ValueError(f"state: expected one of {', '.join(STATES)}")
    with conn.cursor(row_factory=class_row(FoundMeter)) as cur:
        rows = cur.execute(
            _SQL,
            {
                "tenant": tenant_id,
                "after": after,
                "site": site_id,
                "active": active,
                "name": name,
                "like": _like(name or ""),
                "point": point,
                "state": state,
                "shown": MAX_POINTS_SHOWN,
                "limit": limit + 1,
            },
        ).fetchall()
    return rows[:limit], len(rows) > limit


@dataclass(frozen=True, slots=True)
class MeterPoint:
    point_id: int
    meter_id: int
    external_id: str
    name: str
    unit: str
    active: bool


def meter_points(
    conn: psycopg.Connection[Any], tenant_id: int, site_id: int, external_id: str
) -> list[MeterPoint]:
    """Every data point (active or not) of one of the tenant's meters; [] for no such meter."""
    with conn.cursor(row_factory=class_row(MeterPoint)) as cur:
        return cur.execute(
            """SELECT p.id AS point_id, m.id AS meter_id, m.external_id, p.name, p.unit, p.active
               FROM meters m JOIN sites s ON s.id = m.site_id
               JOIN meter_points p ON p.meter_id = m.id
               WHERE s.tenant_id = %s AND m.site_id = %s AND m.external_id = %s
               ORDER BY p.id""",
            (tenant_id, site_id, external_id),
        ).fetchall()
