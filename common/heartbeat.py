"""The heartbeat document (``POST /sync/heartbeat``): one type and one validator for both sides.

The appliance builds a :class:`Heartbeat` and checks its own document with :func:`check_heartbeat`
before sending it; central checks every body it receives with the same function and stores only
what it returns (``to_wire()``), never the body as sent. So every field central later shows or
evaluates — the site page, the fleet figures, alerts — has exactly the type and size stated here:
a number in ``meters[].last_error`` or a 30 MiB heartbeat is refused with a 422 naming the field,
instead of being stored and breaking the page that reads it.

The document::

    {"sent_at": "2026-11-23T10:00:00Z",
     "versions": {"meterit": "0.1.0", "python": "3.11.2", "postgresql": "15.8"},
     "backlog": 12, "oldest_unsynced_age_s": 3.5 | null, "dropped_readings": 0,
     "quarantined_readings": 0,
     "collection_paused": false, "upload_paused": false,
     "meters": [{"external_id": "main-incomer", "state": "reachable",
                 "since": "2026-11-23T09:00:00Z" | null, "last_error": "..." | null}]}

Every field is required except ``quarantined_readings`` (the appliance's total of quarantined
readings), which appliances older than it do not send: absent, it is ``None`` ("not reported"),
and central keeps the count it had. Fields this version does not know are dropped, not refused: an appliance
upgraded before its central keeps heartbeating (and so keeps its site online).
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Literal, cast, get_args

from common.meter_spec import EXTERNAL_ID_RE
from common.problems import Problem, show
from common.timestamps import format_ts, parse_ts

# A meter's state as the collector sees it; the local UI, both MCP servers and central show it.
# "no-values": the device answers, but not one of its points gives a value (wrong objects or
# properties, or a device refusing them).
MeterState = Literal["unknown", "reachable", "no-values", "unreachable"]
METER_STATES: tuple[MeterState, ...] = get_args(MeterState)
# the states that mean "no readings from this meter": central counts them as unreachable
METER_PROBLEM_STATES: tuple[MeterState, ...] = ("no-values", "unreachable")

# Bounds. A site has tens, at most hundreds of meters (the collector's target is 200 per
# appliance); 2,000 leaves room while keeping the worst document under MAX_HEARTBEAT_BYTES.
MAX_METERS = 2000
MAX_ERROR_LENGTH = 300  # characters of a meter's last error: a line, not a traceback
MAX_VERSIONS = 16
MAX_COMPONENT_LENGTH = 32
MAX_VERSION_LENGTH = 100
MAX_COUNT = 2**63 - 1  # PostgreSQL bigint
# the largest document these bounds allow (4-byte UTF-8 characters everywhere) fits this;
# tests/test_heartbeat.py proves it, central refuses a bigger body before parsing it
MAX_HEARTBEAT_BYTES = 4 * 1024 * 1024


@dataclasses.dataclass(frozen=True, slots=True)
class MeterHeartbeat:
    """A meter as the collector last saw it."""

    external_id: str
    state: MeterState
    since: datetime | None
    last_error: str | None


@dataclasses.dataclass(frozen=True, slots=True)
class Heartbeat:
    sent_at: datetime
    versions: Mapping[str, str]
    backlog: int
    oldest_unsynced_age_s: float | None
    dropped_readings: int
    collection_paused: bool
    upload_paused: bool
    meters: tuple[MeterHeartbeat, ...]
    # optional (see the module docstring): None when the appliance does not report it
    quarantined_readings: int | None = None

    def to_wire(self) -> dict[str, Any]:
        """The JSON document: what the appliance sends and central stores."""
        document: dict[str, Any] = {
            "sent_at": format_ts(self.sent_at),
            "versions": dict(self.versions),
            "backlog": self.backlog,
            "oldest_unsynced_age_s": self.oldest_unsynced_age_s,
            "dropped_readings": self.dropped_readings,
            "collection_paused": self.collection_paused,
            "upload_paused": self.upload_paused,
            "meters": [
                {
                    "external_id": m.external_id,
                    "state": m.state,
                    "since": format_ts(m.since) if m.since else None,
                    "last_error": m.last_error,
                }
                for m in self.meters
            ],
        }
        if self.quarantined_readings is not None:
            document["quarantined_readings"] = self.quarantined_readings
        return document

    def encode(self) -> bytes:
        """The request body. UTF-8 as is (not ``\\u`` escapes): the size bound counts bytes."""
        return json.dumps(self.to_wire(), ensure_ascii=False, allow_nan=False).encode()


class HeartbeatInvalid(ValueError):
    """The document breaks the contract; ``problems`` name each field (``meters[3].state``)."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{field}: {reason}" for field, reason in problems))


def clip_error(message: str | None) -> str | None:
    """A meter's error as the heartbeat may carry it (the edge keeps the whole text)."""
    if message is None or len(message) <= MAX_ERROR_LENGTH:
        return message
    return message[: MAX_ERROR_LENGTH - 1] + "…"


def parse_heartbeat(body: Any) -> Heartbeat:
    """The heartbeat in ``body``, or HeartbeatInvalid listing every problem found."""
    heartbeat, problems = check_heartbeat(body)
    if heartbeat is None:
        raise HeartbeatInvalid(problems)
    return heartbeat


def check_heartbeat(body: Any) -> tuple[Heartbeat | None, list[Problem]]:
    """The heartbeat, or None and every problem found, each as (field, reason)."""
    if not isinstance(body, dict):
        return None, [("", f"expected a heartbeat object, got {type(body).__name__}")]
    problems: list[Problem] = []
    values: dict[str, Any] = {}
    for name, check in _CHECKS.items():
        if name in body:
            values[name] = check(body[name], name, problems)
        else:
            problems.append((name, "missing; every heartbeat field is required"))
    for name, check in _OPTIONAL_CHECKS.items():
        if body.get(name) is not None:
            values[name] = check(body[name], name, problems)
    if problems:
        return None, problems
    return Heartbeat(**values), []


def _age(value: Any, field: str, problems: list[Problem]) -> float | None:
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value < 0
    ):
        problems.append((field, f"expected seconds (a number ≥ 0) or null, got {show(value)}"))
        return None
    return float(value)


def _flag(value: Any, field: str, problems: list[Problem]) -> bool:
    if not isinstance(value, bool):
        problems.append((field, f"expected true or false, got {show(value)}"))
        return False
    return value


def _timestamp(value: Any, field: str, problems: list[Problem]) -> datetime | None:
    try:
        return parse_ts(value, field)
    except ValueError as err:
        problems.append((field, str(err).removeprefix(f"{field}: ")))
        return None


def _count(value: Any, field: str, problems: list[Problem]) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_COUNT:
        problems.append((field, f"expected a whole number of at least 0, got {show(value)}"))
        return 0
    return value


def _versions(value: Any, field: str, problems: list[Problem]) -> dict[str, str] | None:
    if not isinstance(value, dict) or len(value) > MAX_VERSIONS:
        problems.append(
            (
                "versions",
                f"expected an object of up to {MAX_VERSIONS} component versions such as "
                f'{{"meterit": "0.1.0"}}, got {show(value)}',
            )
        )
        return None
    for component, version in value.items():
        if not isinstance(component, str) or not 0 < len(component) <= MAX_COMPONENT_LENGTH:
            problems.append(
                ("versions", f"component {show(component)}: 1 to {MAX_COMPONENT_LENGTH} characters")
            )
        if not isinstance(version, str) or len(version) > MAX_VERSION_LENGTH:
            problems.append(
                (
                    f"versions.{str(component)[:MAX_COMPONENT_LENGTH]}",
                    f"expected text of up to {MAX_VERSION_LENGTH} characters, got {show(version)}",
                )
            )
    return dict(value)


def _meters(value: Any, field: str, problems: list[Problem]) -> tuple[MeterHeartbeat, ...] | None:
    if not isinstance(value, list) or len(value) > MAX_METERS:
        problems.append(
            ("meters", f"expected a list of up to {MAX_METERS} meter statuses, got {show(value)}")
        )
        return None
    meters: list[MeterHeartbeat] = []
    seen: set[str] = set()
    for i, item in enumerate(value):
        where = f"meters[{i}]"
        if not isinstance(item, dict):
            problems.append(
                (where, "expected an object with external_id, state, since, last_error")
            )
            continue
        before = len(problems)
        external_id = item.get("external_id")
        if not isinstance(external_id, str) or not EXTERNAL_ID_RE.match(external_id):
            problems.append(
                (f"{where}.external_id", f"expected a meter id, got {show(external_id)}")
            )
        elif external_id in seen:
            problems.append((f"{where}.external_id", f"{external_id!r} is listed twice"))
        else:
            seen.add(external_id)
        state = item.get("state")
        if state not in METER_STATES:
            problems.append(
                (f"{where}.state", f"expected one of {', '.join(METER_STATES)}, got {show(state)}")
            )
        since = item.get("since")
        since_ts = None if since is None else _timestamp(since, f"{where}.since", problems)
        last_error = item.get("last_error")
        if last_error is not None and (
            not isinstance(last_error, str) or len(last_error) > MAX_ERROR_LENGTH
        ):
            problems.append(
                (
                    f"{where}.last_error",
                    f"expected text of up to {MAX_ERROR_LENGTH} characters or null, "
                    f"got {show(last_error)}",
                )
            )
        if len(problems) == before:
            meters.append(
                MeterHeartbeat(
                    cast(str, external_id), cast(MeterState, state), since_ts, last_error
                )
            )
    return tuple(meters)


# field -> its check, in the document's order; each check appends its problems
_CHECKS: dict[str, Callable[[Any, str, list[Problem]], Any]] = {
    "sent_at": _timestamp,
    "versions": _versions,
    "backlog": _count,
    "oldest_unsynced_age_s": _age,
    "dropped_readings": _count,
    "collection_paused": _flag,
    "upload_paused": _flag,
    "meters": _meters,
}
FIELDS = tuple(_CHECKS)
# fields an older appliance does not send; absent (or null), the Heartbeat holds None
_OPTIONAL_CHECKS: dict[str, Callable[[Any, str, list[Problem]], Any]] = {
    "quarantined_readings": _count,
}
OPTIONAL_FIELDS = tuple(_OPTIONAL_CHECKS)
