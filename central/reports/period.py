"""Report periods in a time zone: a day, an ISO week, a calendar month or a custom range of
whole local days, with their UTC bounds and the previous comparable period.

A period is whole local days, so its length in hours follows the zone's clock changes: the
day clocks go forward has 23 hours, a month containing it one hour less than its days times 24.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from central.reports.units import SLOT

KINDS = ("day", "week", "month", "custom")
MAX_CUSTOM_DAYS = 366


class PeriodError(ValueError):
    """A period or time zone a report cannot use; the message names the field."""


def zone(name: str) -> ZoneInfo:
    if not isinstance(name, str) or not 1 <= len(name) <= 64 or name.startswith(("/", ".")):
        raise PeriodError(f"time_zone: expected an IANA zone such as Europe/Paris, got {name!r}")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise PeriodError(
            f"time_zone: {name!r} is not a known IANA zone (such as Europe/Paris)"
        ) from None


def _month_start(day: date) -> date:
    return day.replace(day=1)


def _next_month(day: date) -> date:
    return (day.replace(day=28) + timedelta(days=4)).replace(day=1)


@dataclass(frozen=True, slots=True)
class Period:
    kind: str
    first_day: date  # local dates, inclusive
    last_day: date
    time_zone: str

    @classmethod
    def of(cls, kind: str, day: date, time_zone: str, last_day: date | None = None) -> Period:
        """The ``kind`` period containing ``day`` (for custom: ``day`` to ``last_day``)."""
        zone(time_zone)
        if kind == "day":
            first, last = day, day
        elif kind == "week":
            first = day - timedelta(days=day.weekday())
            last = first + timedelta(days=6)
        elif kind == "month":
            first = _month_start(day)
            last = _next_month(first) - timedelta(days=1)
        elif kind == "custom":
            if last_day is None:
                raise PeriodError("period.last_day: a custom period needs its last day")
            first, last = day, last_day
            if last < first:
                raise PeriodError("period.last_day: must not be before period.first_day")
            if (last - first).days + 1 > MAX_CUSTOM_DAYS:
                raise PeriodError(f"period: a custom period is at most {MAX_CUSTOM_DAYS} days")
        else:
            raise PeriodError(f"period.kind: expected one of {', '.join(KINDS)}, got {kind!r}")
        period = cls(kind, first, last, time_zone)
        for edge in (period.start, period.end):
            if edge.timestamp() % SLOT.total_seconds():
                raise PeriodError(
                    f"time_zone: {time_zone}'s midnight on these days is not on a 5-minute "
                    "boundary in UTC, which the rollup needs"
                )
        return period

    @property
    def zoneinfo(self) -> ZoneInfo:
        return zone(self.time_zone)

    def _midnight(self, day: date) -> datetime:
        return datetime.combine(day, time(0), self.zoneinfo).astimezone(UTC)

    @property
    def start(self) -> datetime:
        return self._midnight(self.first_day)

    @property
    def end(self) -> datetime:
        """Exclusive: the first instant of the day after ``last_day``."""
        return self._midnight(self.last_day + timedelta(days=1))

    @property
    def hours(self) -> float:
        return (self.end - self.start).total_seconds() / 3600

    @property
    def days(self) -> list[date]:
        n = (self.last_day - self.first_day).days + 1
        return [self.first_day + timedelta(days=i) for i in range(n)]

    def previous(self) -> Period:
        """The comparable period just before: the day, week or month before; for a custom
        range, as many days ending the day before it starts."""
        if self.kind == "month":
            return Period.of("month", self.first_day - timedelta(days=1), self.time_zone)
        length = (self.last_day - self.first_day).days + 1
        first = self.first_day - timedelta(days=length)
        return Period(self.kind, first, self.first_day - timedelta(days=1), self.time_zone)

    def local(self, ts: datetime) -> datetime:
        return ts.astimezone(self.zoneinfo)

    @property
    def label(self) -> str:
        f, last = self.first_day, self.last_day
        if self.kind == "day":
            return f"{f:%a} {f.day} {f:%b %Y}"
        if self.kind == "month":
            return f"{f:%B %Y}"
        if self.kind == "week":
            return (
                f"Week {f.isocalendar().week}, {f.day} {f:%b} \N{EN DASH} {last.day} {last:%b %Y}"
            )
        return f"{f.day} {f:%b %Y} \N{EN DASH} {last.day} {last:%b %Y}"

    def as_json(self) -> dict[str, str]:
        return {
            "kind": self.kind,
            "first_day": self.first_day.isoformat(),
            "last_day": self.last_day.isoformat(),
            "time_zone": self.time_zone,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "label": self.label,
        }
