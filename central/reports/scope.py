"""What a report covers: some or all of a tenant's sites, their meters and data points."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import psycopg

from central.reports.units import kwh_factor

MAX_SITES = 500
MAX_ID = 2**31 - 1  # ids are PostgreSQL integers


class ScopeError(ValueError):
    """A scope naming sites the tenant does not have; the message names the field."""


@dataclass(frozen=True, slots=True)
class PointInfo:
    point_id: int
    meter_id: int
    external_id: str
    meter_name: str
    name: str
    unit: str

    @property
    def factor(self) -> float | None:
        """To kWh, for a cumulative energy counter; None for any other point."""
        return kwh_factor(self.unit)


@dataclass(slots=True)
class SiteInfo:
    site_id: int
    name: str
    points: list[PointInfo] = field(default_factory=list)


def parse_site_ids(raw: Any) -> list[int] | None:
    """``None`` (every site) or a list of distinct site ids."""
    if raw is None:
        return None
    if (
        not isinstance(raw, list)
        or not 1 <= len(raw) <= MAX_SITES
        or not all(isinstance(s, int) and not isinstance(s, bool) and 0 < s <= MAX_ID for s in raw)
    ):
        raise ScopeError(f"scope.site_ids: expected null (every site) or 1 to {MAX_SITES} site ids")
    return sorted(set(raw))


def resolve(
    conn: psycopg.Connection[Any], tenant_id: int, site_ids: list[int] | None
) -> list[SiteInfo]:
    """The sites of the scope with their points, in name order. Active meters and points count,
    and so do inactive ones: a meter replaced last week still has this month's readings."""
    rows = conn.execute(
        """SELECT s.id, s.name FROM sites s
           WHERE s.tenant_id = %(tenant)s
             AND (%(ids)s::int[] IS NULL AND s.active OR s.id = ANY(%(ids)s::int[]))
           ORDER BY s.name, s.id""",
        {"tenant": tenant_id, "ids": site_ids},
    ).fetchall()
    sites = {r[0]: SiteInfo(r[0], r[1]) for r in rows}
    if site_ids is not None and len(sites) != len(site_ids):
        missing = sorted(set(site_ids) - set(sites))
        raise ScopeError(f"scope.site_ids: no site visible to you with id {missing[0]}")
    for row in conn.execute(
        """SELECT m.site_id, p.id, m.id, m.external_id, m.name, p.name, p.unit
           FROM meters m JOIN meter_points p ON p.meter_id = m.id
           WHERE m.site_id = ANY(%s) ORDER BY m.external_id, p.name""",
        (list(sites),),
    ):
        sites[row[0]].points.append(PointInfo(*row[1:]))
    return list(sites.values())
