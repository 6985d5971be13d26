"""The heartbeat contract (common.heartbeat): one validator, strict per field, bounded in size.

Both sides run this very function (the appliance on what it builds, central on what it gets);
tests/test_central_sync.py drives it through central over HTTP and tests/test_sync_retention.py
sends what a real edge database builds.
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from common import heartbeat
from common.heartbeat import (
    FIELDS,
    MAX_COMPONENT_LENGTH,
    MAX_ERROR_LENGTH,
    MAX_HEARTBEAT_BYTES,
    MAX_METERS,
    MAX_VERSION_LENGTH,
    MAX_VERSIONS,
    METER_STATES,
    Heartbeat,
    HeartbeatInvalid,
    MeterHeartbeat,
    check_heartbeat,
    clip_error,
    parse_heartbeat,
)
from common.wire import MAX_NAME_LENGTH

GOOD: dict[str, Any] = {
    "sent_at": "2026-11-23T10:00:00Z",
    "versions": {"meterit": "0.1.0", "postgresql": "15.8"},
    "backlog": 12,
    "oldest_unsynced_age_s": 3.5,
    "dropped_readings": 0,
    "collection_paused": False,
    "upload_paused": True,
    "meters": [
        {
            "external_id": "main",
            "state": "reachable",
            "since": "2026-11-23T09:00:00Z",
            "last_error": None,
        },
        {
            "external_id": "chiller-1",
            "state": "unreachable",
            "since": None,
            "last_error": "timeout",
        },
    ],
}


def with_change(path: str, value: Any) -> dict[str, Any]:
    """GOOD with one field set (``meters.0.last_error``) or removed (value is ``...``)."""
    body = copy.deepcopy(GOOD)
    *parents, last = path.split(".")
    target: Any = body
    for key in parents:
        target = target[int(key)] if key.isdigit() else target[key]
    key_or_index: Any = int(last) if last.isdigit() else last
    if value is ...:
        del target[key_or_index]
    else:
        target[key_or_index] = value
    return body


def test_a_good_heartbeat_parses_to_its_type_and_back_unchanged() -> None:
    beat = parse_heartbeat(GOOD)
    assert beat.sent_at == datetime(2026, 11, 23, 10, tzinfo=UTC)
    assert beat.backlog == 12 and beat.upload_paused is True
    assert beat.meters[1] == MeterHeartbeat("chiller-1", "unreachable", None, "timeout")
    assert beat.to_wire() == GOOD
    assert json.loads(beat.encode()) == GOOD


def test_a_zone_given_as_an_offset_is_stored_as_utc() -> None:
    beat = parse_heartbeat(with_change("sent_at", "2026-11-23T11:00:00+01:00"))
    assert beat.to_wire()["sent_at"] == "2026-11-23T10:00:00Z"


def test_fields_this_version_does_not_know_are_dropped() -> None:
    beat = parse_heartbeat({**GOOD, "from_a_newer_appliance": [1, 2, 3]})
    assert beat.to_wire() == GOOD


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        # issue 16 item 7: a number here broke the site page of every operator
        ("meters.0.last_error", 42, "meters[0].last_error"),
        ("meters.0.last_error", "x" * (MAX_ERROR_LENGTH + 1), "meters[0].last_error"),
        ("meters.1.state", "stale", "meters[1].state"),
        ("meters.1.state", None, "meters[1].state"),
        ("meters.1.external_id", "a b", "meters[1].external_id"),
        ("meters.1.external_id", "main", "meters[1].external_id"),  # listed twice
        ("meters.1.since", "yesterday", "meters[1].since"),
        ("meters.1.since", "2026-11-23T09:00:00", "meters[1].since"),  # no zone
        ("meters.1", "main", "meters[1]"),
        ("meters", {"main": "reachable"}, "meters"),
        ("meters", [GOOD["meters"][1]] * (MAX_METERS + 1), "meters"),
        ("backlog", -1, "backlog"),
        ("backlog", True, "backlog"),
        ("backlog", 1.5, "backlog"),
        ("backlog", 2**63, "backlog"),
        ("dropped_readings", "0", "dropped_readings"),
        ("oldest_unsynced_age_s", -1, "oldest_unsynced_age_s"),
        ("oldest_unsynced_age_s", float("inf"), "oldest_unsynced_age_s"),
        ("oldest_unsynced_age_s", "3.5", "oldest_unsynced_age_s"),
        ("collection_paused", 0, "collection_paused"),
        ("upload_paused", "false", "upload_paused"),
        ("versions", ["0.1.0"], "versions"),
        ("versions.meterit", 1, "versions.meterit"),
        ("versions.meterit", "v" * (MAX_VERSION_LENGTH + 1), "versions.meterit"),
        ("versions", {f"c{i}": "1" for i in range(MAX_VERSIONS + 1)}, "versions"),
        ("versions", {"c" * (MAX_COMPONENT_LENGTH + 1): "1"}, "versions"),
        ("sent_at", 1764000000, "sent_at"),
        ("sent_at", "2026-11-23T10:00:00", "sent_at"),
        ("sent_at", ..., "sent_at"),
        ("meters", ..., "meters"),
    ],
)
def test_each_bad_field_is_refused_by_name(path: str, value: Any, field: str) -> None:
    beat, problems = check_heartbeat(with_change(path, value))
    assert beat is None
    assert [f for f, _ in problems] == [field], problems
    with pytest.raises(HeartbeatInvalid) as err:
        parse_heartbeat(with_change(path, value))
    assert str(err.value).startswith(f"{field}: ")


def test_a_huge_bad_value_is_not_echoed_back() -> None:
    _, problems = check_heartbeat(with_change("meters.0.last_error", ["x" * 1_000_000]))
    assert len(problems) == 1 and len(problems[0][1]) < 200


def test_not_an_object_is_refused() -> None:
    assert check_heartbeat([GOOD]) == (None, [("", "expected a heartbeat object, got list")])


def test_every_field_is_required() -> None:
    _, problems = check_heartbeat({})
    assert [f for f, _ in problems] == list(FIELDS)


def test_the_quarantine_count_is_optional_for_older_appliances_but_checked() -> None:
    older = parse_heartbeat(GOOD)
    assert older.quarantined_readings is None
    assert "quarantined_readings" not in older.to_wire()
    newer = parse_heartbeat({**GOOD, "quarantined_readings": 7})
    assert newer.quarantined_readings == 7 and newer.to_wire()["quarantined_readings"] == 7
    for bad in (-1, 2**63, "7", True, 1.5):
        _, problems = check_heartbeat({**GOOD, "quarantined_readings": bad})
        assert [f for f, _ in problems] == ["quarantined_readings"], bad


def test_the_largest_heartbeat_the_bounds_allow_fits_the_size_cap() -> None:
    wide = "\U0001f50c"  # 4 bytes in UTF-8: the worst case per character
    beat = Heartbeat(
        sent_at=datetime(2026, 11, 23, tzinfo=UTC),
        versions={
            f"{i:0{MAX_COMPONENT_LENGTH}d}": wide * MAX_VERSION_LENGTH for i in range(MAX_VERSIONS)
        },
        backlog=2**63 - 1,
        oldest_unsynced_age_s=1e300,
        dropped_readings=2**63 - 1,
        quarantined_readings=2**63 - 1,
        collection_paused=False,
        upload_paused=False,
        meters=tuple(
            MeterHeartbeat(
                f"{i:0{MAX_NAME_LENGTH}d}",
                "unreachable",
                datetime(2026, 11, 23, tzinfo=UTC),
                wide * MAX_ERROR_LENGTH,
            )
            for i in range(MAX_METERS)
        ),
    )
    encoded = beat.encode()
    assert parse_heartbeat(json.loads(encoded)) == beat
    assert len(encoded) <= MAX_HEARTBEAT_BYTES


def test_a_long_error_is_clipped_to_what_the_heartbeat_may_carry() -> None:
    clipped = clip_error("e" * 10_000)
    assert clipped is not None and len(clipped) == MAX_ERROR_LENGTH
    assert clip_error("short") == "short" and clip_error(None) is None


def test_the_openapi_document_states_the_same_contract() -> None:
    document = json.loads((Path(__file__).parents[1] / "central" / "openapi.json").read_text())
    schema = document["components"]["schemas"]["Heartbeat"]
    assert schema["required"] == list(heartbeat.FIELDS)
    meters = schema["properties"]["meters"]
    assert meters["maxItems"] == MAX_METERS
    assert meters["items"]["properties"]["state"]["enum"] == list(METER_STATES)
    assert meters["items"]["properties"]["last_error"]["maxLength"] == MAX_ERROR_LENGTH
    assert schema["properties"]["versions"]["maxProperties"] == MAX_VERSIONS
