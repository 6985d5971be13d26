"""A report request as callers send it (API body, UI form, MCP arguments), checked in one
place: every problem is named by its field."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from central.reports.period import KINDS, Period, PeriodError
from central.reports.scope import ScopeError, parse_site_ids
from central.reports.units import DEFAULT_DEMAND_MINUTES, DEMAND_MINUTES


class RequestError(ValueError):
    """What is wrong with a request, field by field."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{f}: {r}" for f, r in problems))


@dataclass(frozen=True, slots=True)
class ReportSpec:
    site_ids: list[int] | None
    period: Period
    demand_minutes: int


def _day(raw: Any, field: str, problems: list[tuple[str, str]]) -> date | None:
    if not isinstance(raw, str) or len(raw) != 10:
        problems.append((field, "expected a date such as 2026-10-01"))
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        problems.append((field, f"{raw!r} is not a date such as 2026-10-01"))
        return None


def parse(
    scope: Any, period: Any, time_zone: Any, demand_minutes: Any = DEFAULT_DEMAND_MINUTES
) -> ReportSpec:
    """``scope`` {"site_ids": [...] or null}; ``period`` {"kind", "day", "last_day" (custom)};
    ``time_zone`` an IANA name; ``demand_minutes`` one of ``DEMAND_MINUTES``."""
    problems: list[tuple[str, str]] = []
    site_ids = None
    if scope is not None and not isinstance(scope, dict):
        problems.append(("scope", 'expected an object such as {"site_ids": [1, 2]}'))
    else:
        try:
            site_ids = parse_site_ids((scope or {}).get("site_ids"))
        except ScopeError as err:
            problems.append(("scope.site_ids", str(err).split(": ", 1)[1]))
    if (
        isinstance(demand_minutes, bool)
        or not isinstance(demand_minutes, int)
        or demand_minutes not in DEMAND_MINUTES
    ):
        problems.append(
            ("demand_minutes", f"expected one of {', '.join(map(str, DEMAND_MINUTES))}")
        )
    built = None
    if not isinstance(period, dict):
        problems.append(
            ("period", 'expected an object such as {"kind": "month", "day": "2026-10-01"}')
        )
    else:
        kind = period.get("kind")
        if kind not in KINDS:
            problems.append(("period.kind", f"expected one of {', '.join(KINDS)}"))
        day = _day(period.get("day"), "period.day", problems)
        last = None
        if kind == "custom":
            last = _day(period.get("last_day"), "period.last_day", problems)
        if not isinstance(time_zone, str):
            problems.append(("time_zone", "expected an IANA zone such as Europe/Paris"))
        elif day is not None and kind in KINDS and (kind != "custom" or last is not None):
            try:
                built = Period.of(str(kind), day, time_zone, last)
            except PeriodError as err:
                field, _, reason = str(err).partition(": ")
                problems.append((field, reason))
    if problems or built is None:
        raise RequestError(problems or [("period", "incomplete")])
    return ReportSpec(site_ids, built, int(demand_minutes))
