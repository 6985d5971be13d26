"""The one ISO 8601 timestamp form MeterIT writes, and the one parser of what it reads.

Written: UTC with a trailing ``Z`` (``2026-11-23T10:00:00Z``), never naive. Read: any ISO 8601
form with a zone (``Z`` or an offset); a timestamp without one is refused, because guessing its
zone would silently shift every reading by hours. The one exception is a browser's
``datetime-local`` input, which has no zone by design and is read as UTC where a page says so
(``naive_is_utc``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from common.problems import show

EXAMPLE = "2026-11-23T10:00:00Z"


def format_ts(ts: datetime) -> str:
    """UTC ISO 8601 with a ``Z``: the only timestamp form put on the wire or in an answer."""
    if ts.tzinfo is None:
        raise ValueError("naive datetime: MeterIT timestamps are UTC")
    return ts.astimezone(UTC).isoformat().replace("+00:00", "Z")


def parse_ts(value: Any, field: str = "ts", *, naive_is_utc: bool = False) -> datetime:
    """An aware datetime from ISO 8601 text; ValueError names ``field`` and shows the form."""
    if not isinstance(value, str):
        raise ValueError(
            f"{field}: expected an ISO 8601 string such as {EXAMPLE}, got {show(value)}"
        )
    try:
        ts = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ValueError(
            f"{field}: {show(value)} is not an ISO 8601 timestamp; send e.g. {EXAMPLE}"
        ) from None
    if ts.tzinfo is None:
        if naive_is_utc:
            return ts.replace(tzinfo=UTC)
        raise ValueError(
            f"{field}: {show(value)} has no time zone; send UTC such as {value.strip()[:40]}Z"
        )
    return ts
