"""Energy figures of a period from the hourly rollup: consumption, peak demand with its time,
average load and load factor per point, site and fleet, the counter resets met on the way,
daily consumption and the load curve. The SQL is in ``energy_sql``; this module shapes it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import psycopg

from central.reports import energy_sql
from central.reports.period import Period
from central.reports.units import VOID_STEP


@dataclass(frozen=True, slots=True)
class Figures:
    """Energy in kWh, demand and load in kW; peak None when no interval could count."""

    energy_kwh: float
    peak_kw: float | None
    peak_start: datetime | None
    avg_kw: float
    load_factor: float | None

    def as_json(self, period: Period, demand: timedelta) -> dict[str, Any]:
        start = self.peak_start
        return {
            "energy_kwh": self.energy_kwh,
            "peak_kw": self.peak_kw,
            "peak_start": period.local(start).isoformat() if start else None,
            "peak_end": period.local(start + demand).isoformat() if start else None,
            "avg_kw": self.avg_kw,
            "load_factor": self.load_factor,
        }


def figures(
    energy: float,
    peak_energy: float | None,
    peak_start: datetime | None,
    period: Period,
    demand: timedelta,
) -> Figures:
    hours = demand.total_seconds() / 3600
    peak = None if peak_energy is None else peak_energy / hours
    avg = energy / period.hours
    factor = avg / peak if peak else None
    return Figures(energy, peak, peak_start if peak is not None else None, avg, factor)


@dataclass(frozen=True, slots=True)
class Reset:
    point_id: int
    at: datetime
    count: int
    before: float | None  # the values either side, when the drop was between two hours
    after: float | None


@dataclass(slots=True)
class SiteSeries:
    """A site's energy per demand interval (all its counters summed) and which are void."""

    energy: list[float]
    void: list[bool]


@dataclass(slots=True)
class PeriodEnergy:
    period: Period
    demand: timedelta
    points: dict[int, Figures] = field(default_factory=dict)
    voids: dict[int, int] = field(default_factory=dict)  # point -> void intervals
    sites: dict[int, SiteSeries] = field(default_factory=dict)
    resets: list[Reset] = field(default_factory=list)

    @property
    def intervals(self) -> int:
        return int((self.period.end - self.period.start) / self.demand)

    def interval_start(self, idx: int) -> datetime:
        return self.period.start + idx * self.demand

    def site_figures(self, site_id: int) -> Figures:
        series = self.sites.get(site_id)
        if series is None:
            return figures(0.0, None, None, self.period, self.demand)
        best: int | None = None
        for i, (e, v) in enumerate(zip(series.energy, series.void, strict=True)):
            if not v and (best is None or e > series.energy[best]):
                best = i
        peak = None if best is None else series.energy[best]
        return figures(
            sum(series.energy),
            peak,
            None if best is None else self.interval_start(best),
            self.period,
            self.demand,
        )

    def fleet_figures(self, site_ids: Iterable[int]) -> Figures:
        """Totals over sites; the fleet's peak is coincident (the sites' sum per interval)."""
        n = self.intervals
        total, void = [0.0] * n, [False] * n
        for site_id in site_ids:
            series = self.sites.get(site_id)
            if series is None:
                continue
            for i in range(n):
                total[i] += series.energy[i]
                void[i] = void[i] or series.void[i]
        self.sites[-1] = SiteSeries(total, void)
        try:
            return self.site_figures(-1)
        finally:
            del self.sites[-1]

    def daily(self, site_id: int) -> list[tuple[date, float]]:
        """Energy per local day (an interval belongs to the day it starts in)."""
        per_day = dict.fromkeys(self.period.days, 0.0)
        series = self.sites.get(site_id)
        if series is not None:
            for i, e in enumerate(series.energy):
                if e:
                    per_day[self.period.local(self.interval_start(i)).date()] += e
        return list(per_day.items())


def _aligned(period: Period, demand: timedelta, allowed: bool = True) -> int | None:
    offset = period.start.minute * 60 + period.start.second
    return energy_sql.aligned(offset, int(demand.total_seconds())) if allowed else None


def _params(period: Period, demand: timedelta) -> dict[str, Any]:
    return {
        "start": period.start,
        "end": period.end,
        "first_hour": period.start.replace(minute=0, second=0, microsecond=0),
        "interval_s": int(demand.total_seconds()),
        "void_step": VOID_STEP,
    }


def compute(
    conn: psycopg.Connection[Any],
    counters: dict[int, tuple[int, float]],
    period: Period,
    demand: timedelta,
    *,
    detail: bool = True,
    aligned: bool = True,
) -> PeriodEnergy:
    """Energy figures of ``counters`` (point id -> (site id, factor to kWh)) over ``period``.
    ``detail`` adds the counter resets (the previous period, shown only as totals, goes
    without); ``aligned=False`` takes the slot-by-slot way even where
    whole intervals would do (the tests compare both)."""
    out = PeriodEnergy(period, demand)
    points = list(counters)
    params = {
        **_params(period, demand),
        "points": points,
        "factors": [counters[p][1] for p in points],
        "detail": detail,
    }
    n = out.intervals
    sql = energy_sql.energy_sql(_aligned(period, demand, aligned))
    with conn.transaction():
        conn.execute("SET LOCAL jit = off")
        conn.execute("SET LOCAL work_mem = '64MB'")
        rows = conn.execute(sql, params).fetchall()
    for kind, key, idx, energy, peak, void, count, at, before, after in rows:
        if kind == "p":
            start = None if idx is None else out.interval_start(idx)
            out.points[key] = figures(energy, peak, start, period, demand)
            out.voids[key] = count
        elif kind == "s":
            series = out.sites.get(key)
            if series is None:
                series = out.sites[key] = SiteSeries([0.0] * n, [False] * n)
            series.energy[idx] = energy
            series.void[idx] = void
        else:
            out.resets.append(Reset(key, at, count, before, after))
    out.resets.sort(key=lambda r: (r.point_id, r.at))
    for point_id in points:
        if point_id not in out.points:
            out.points[point_id] = figures(0.0, None, None, period, demand)
    return out
