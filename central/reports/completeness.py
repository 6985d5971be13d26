"""Data completeness: for every data point, the share of the period's intervals (the demand
interval) that hold at least one reading, and the gaps as (start, end, duration), so a report
never presents partial data as whole."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import psycopg

from central.reports import energy_sql
from central.reports.period import Period

MAX_GAPS_LISTED = 20  # per point; the count and total duration cover all of them


@dataclass(frozen=True, slots=True)
class Gap:
    start: datetime
    end: datetime

    @property
    def minutes(self) -> int:
        return int((self.end - self.start).total_seconds() // 60)


@dataclass(slots=True)
class Completeness:
    expected: int
    present: int
    gaps: list[Gap] = field(default_factory=list)  # at most MAX_GAPS_LISTED
    gap_count: int = 0
    missing_minutes: int = 0

    @property
    def pct(self) -> float:
        return 100.0 * self.present / self.expected if self.expected else 100.0

    def as_json(self, period: Period) -> dict[str, Any]:
        return {
            "expected": self.expected,
            "present": self.present,
            "pct": self.pct,
            "gap_count": self.gap_count,
            "missing_minutes": self.missing_minutes,
            "gaps": [
                {
                    "start": period.local(g.start).isoformat(),
                    "end": period.local(g.end).isoformat(),
                    "minutes": g.minutes,
                }
                for g in self.gaps
            ],
            "gaps_truncated": self.gap_count > len(self.gaps),
        }


def _from_runs(
    period: Period, interval: timedelta, present: int, last: int | None, runs: list[tuple[int, int]]
) -> Completeness:
    expected = int((period.end - period.start) / interval)
    if last is None:
        runs = [(0, expected)]
    elif last < expected - 1:
        runs = [*runs, (last + 1, expected)]
    out = Completeness(expected, present, gap_count=len(runs))
    for first, end in runs:
        gap = Gap(period.start + first * interval, period.start + end * interval)
        out.missing_minutes += gap.minutes
        if len(out.gaps) < MAX_GAPS_LISTED:
            out.gaps.append(gap)
    return out


def compute(
    conn: psycopg.Connection[Any],
    point_ids: list[int],
    period: Period,
    interval: timedelta,
    *,
    aligned: bool = True,
) -> dict[int, Completeness]:
    params = {
        "points": point_ids,
        "start": period.start,
        "end": period.end,
        "first_hour": period.start.replace(minute=0, second=0, microsecond=0),
        "interval_s": int(interval.total_seconds()),
    }
    offset = period.start.minute * 60 + period.start.second
    spi = energy_sql.aligned(offset, int(interval.total_seconds())) if aligned else None
    found: dict[int, Completeness] = {}
    with conn.transaction():
        conn.execute("SET LOCAL jit = off")
        for point_id, present, last, starts, ends in conn.execute(
            energy_sql.presence_sql(spi), params
        ):
            runs = list(zip(starts or [], ends or [], strict=True))
            found[point_id] = _from_runs(period, interval, present, last, runs)
    return {p: found.get(p) or _from_runs(period, interval, 0, None, []) for p in point_ids}
