"""One rule for online / late / offline, judged at an instant the caller gives."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from central.connectivity import STATES, Thresholds, connectivity

NOW = datetime(2026, 3, 29, 1, 30, tzinfo=UTC)  # a DST night elsewhere: UTC does not care
LIMITS = Thresholds(late_s=600, offline_s=1800)


@pytest.mark.parametrize(
    ("age_s", "state"),
    [(0, "online"), (599.9, "online"), (600, "late"), (1799.9, "late"), (1800, "offline")],
)
def test_state_follows_the_heartbeat_age_at_the_given_instant(age_s: float, state: str) -> None:
    assert connectivity(NOW - timedelta(seconds=age_s), NOW, LIMITS) == state


def test_the_same_heartbeat_ages_as_time_passes() -> None:
    last = NOW
    seen = [connectivity(last, NOW + timedelta(minutes=m), LIMITS) for m in (1, 15, 45)]
    assert seen == ["online", "late", "offline"]


def test_a_silent_site_is_never_and_a_deactivated_one_inactive() -> None:
    assert connectivity(None, NOW, LIMITS) == "never"
    assert connectivity(NOW, NOW, LIMITS, active=False) == "inactive"
    assert connectivity(None, NOW, LIMITS, active=False) == "inactive"
    assert {"online", "late", "offline", "never", "inactive"} == set(STATES)


def test_thresholds_come_from_the_apps_config() -> None:
    config = {"HEARTBEAT_LATE_S": "90", "HEARTBEAT_OFFLINE_S": 300}
    assert Thresholds.from_config(config) == Thresholds(90.0, 300.0)
