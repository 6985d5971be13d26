"""Test times that move with the calendar, for readings that pass through central's accept window.

Central refuses readings more than ``accept_past_days`` (366) old and the edge prunes synced
readings after ``retention_days``: a test reading stamped on a fixed date passes today and turns
the suite red a year later. So the readings tests send are stamped from the first day of the
previous month (28 to 62 days back: far enough for a few weeks of minutes before now, never near
either limit). Dates kept for their own sake (a DST night, a report's month written directly to
the database) stay fixed in their tests.
"""

from __future__ import annotations

from datetime import UTC, date, datetime


def previous_month_start(today: date) -> datetime:
    """00:00 UTC on the first day of the month before ``today``'s."""
    year, month = (today.year, today.month - 1) if today.month > 1 else (today.year - 1, 12)
    return datetime(year, month, 1, tzinfo=UTC)


T0 = previous_month_start(datetime.now(UTC).date())


def iso(ts: datetime) -> str:
    """A UTC time as the wire has it: 2026-11-23T10:00:00Z."""
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
