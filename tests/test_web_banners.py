"""The appliance's local page warns what it can see itself, since it cannot e-mail while cut
off: central unreachable for more than 15 minutes, and a backlog above its threshold."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from appliance.service import SyncStatus
from appliance.sync.banners import banners
from tests.web_fixtures import (
    PASSWORD,
    add_past_readings,
    log_in,
    make_appliance,
)

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def status(state: str, since: datetime | None, backlog: int, enrolled: bool = True) -> SyncStatus:
    connectivity: Any = {
        "state": state,
        "since": since,
        "consecutive_failures": 3,
        "last_success_at": None,
        "last_error": "connection refused",
        "last_error_at": since,
    }
    return {"enrolled": enrolled, "connectivity": connectivity, "backlog": backlog}  # type: ignore[typeddict-item]


def test_banners_follow_the_clock_and_the_threshold() -> None:
    grace = timedelta(minutes=15)
    assert banners(status("offline", NOW - timedelta(minutes=14), 0), NOW, grace, 10000) == []
    (late,) = banners(status("offline", NOW - timedelta(minutes=16), 0), NOW, grace, 10000)
    assert late.kind == "central_unreachable" and "16 min" in late.message
    assert "connection refused" in late.message
    assert banners(status("online", NOW - timedelta(hours=5), 10000), NOW, grace, 10000) == []
    (backlog,) = banners(status("online", NOW, 10001), NOW, grace, 10000)
    assert backlog.kind == "backlog" and "10,001 readings" in backlog.message
    # an appliance not enrolled yet has no central to miss
    assert (
        banners(status("offline", NOW - timedelta(days=1), 0, enrolled=False), NOW, grace, 1) == []
    )


def test_the_local_page_shows_both_banners(
    edge_db_url: str, redis_url: str, tmp_path: Path, new_page: Any
) -> None:
    appliance = make_appliance(edge_db_url, redis_url, tmp_path)
    appliance.env.update(
        METERIT_CENTRAL_URL="http://127.0.0.1:9",  # nothing listens: central is unreachable
        METERIT_API_KEY="mtk_00000000_unreachable-central-key-for-this-test",
        METERIT_BANNER_BACKLOG_READINGS="50",
    )
    appliance.sql(
        "INSERT INTO meters (external_id, name, address) VALUES ('m-1', 'Incomer', '10.0.0.5')"
    )
    appliance.sql(
        "INSERT INTO meter_points (meter_id, name, object_type, object_instance, unit)"
        " SELECT id, 'power_kw', 'analog-input', 1, 'kW' FROM meters"
    )
    add_past_readings(edge_db_url, per_point=60)
    appliance.sql(
        "UPDATE appliance_state SET connectivity = 'offline', last_error = 'connection refused',"
        " connectivity_since = now() - interval '20 minutes'"
    )
    appliance.start_web()
    try:
        page = log_in(new_page(width=390, height=844, mobile=True), appliance.web_url, PASSWORD)
        page.wait_for_selector("[data-banner=central_unreachable]")
        text = page.inner_text("[data-banner=central_unreachable]")
        assert "unreachable for 20 min" in text and "connection refused" in text
        assert "60 readings are waiting" in page.inner_text("[data-banner=backlog]")
        # the banner goes once central answers again
        appliance.sql("UPDATE appliance_state SET connectivity = 'online'")
        page.goto(appliance.web_url + "/sync")
        assert page.locator("[data-banner=central_unreachable]").count() == 0
    finally:
        appliance.stop()
