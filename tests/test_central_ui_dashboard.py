"""The fleet dashboard and site page in a real browser, fed through the real sync API: a site
is online with its values while it sends heartbeats, then late, then offline."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from playwright.sync_api import Browser, expect

from central.ui.dashboard import PAGE_SIZE
from tests import ui_browser
from tests.central_fixtures import (
    CentralServer,
)
from tests.ui_browser import (
    PASSWORD,
    POINTS,
    Ui,
    meter_readings,
    run_rollup,
    send_heartbeat,
    send_readings,
)

pytestmark = pytest.mark.browser


def expected_energy_today(items: list[dict[str, object]], now: datetime) -> float:
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    counter = [
        (datetime.fromisoformat(str(i["ts"])), float(i["value"]))  # type: ignore[arg-type]
        for i in items
        if i["point"] == "energy_kwh"
    ]
    before = [v for ts, v in counter if ts < day]
    today = [v for ts, v in counter if ts >= day]
    return today[-1] - (before[-1] if before else today[0])


def test_dashboard_shows_a_site_online_with_its_values(ui: Ui) -> None:
    central = ui.central
    site = central.create_site("Riverside Works")
    for meter in ("main-incomer", "chiller-1"):
        central.add_meter(site.site_id, meter, POINTS, address="10.0.0.5:47808")
    quiet = central.create_site("Quiet Yard")  # never sends anything
    central.create_user("viewer@example.com", PASSWORD, "viewer")
    now = datetime.now(UTC)
    items = meter_readings("main-incomer", now) + meter_readings("chiller-1", now)
    answer = send_readings(central, site.api_key, items)
    assert answer["accepted"] == len(items) and not answer["rejected"]
    send_heartbeat(central, site.api_key, backlog=250, unreachable=("chiller-1",))
    run_rollup(central)

    ui.login("viewer@example.com")
    row = ui.page.locator("tr[data-site='Riverside Works']")
    expect(row.locator(".pill")).to_have_text("online")
    expect(row.get_by_test_id("power")).to_contain_text("240.0")
    energy = 2 * expected_energy_today(meter_readings("main-incomer", now), now)
    expect(row.get_by_test_id("energy-today")).to_contain_text(f"{energy:,.1f}")
    expect(row).to_contain_text("chiller-1")  # unreachable, from the heartbeat
    expect(row).to_contain_text("250")  # backlog
    expect(row).to_contain_text("2 / 2")  # meters reporting
    expect(ui.page.locator("tr[data-site='Quiet Yard'] .pill")).to_have_text("never")
    expect(ui.page.get_by_test_id("sites-shown")).to_have_text("2 sites, worst first")
    # worst first: the site never seen above the one online
    expect(ui.page.locator("tr[data-site]").first).to_have_attribute("data-site", "Quiet Yard")
    expect(ui.page.get_by_test_id("kpi-online")).to_contain_text("1")
    expect(ui.page.get_by_test_id("kpi-power")).to_contain_text("240.0")
    ui.page.wait_for_selector("canvas[data-chart='power']")
    ui.screenshot("ui-dashboard-online")

    # the filter narrows the table and the figures
    ui.page.fill("#q", "quiet")
    ui.page.click("button:has-text('Filter')")
    expect(ui.page.locator("tr[data-site]")).to_have_count(1)
    expect(ui.page.get_by_test_id("kpi-power")).to_contain_text("0.0")
    ui.page.select_option("#state", "never")
    ui.page.fill("#q", "")
    ui.page.click("button:has-text('Filter')")
    expect(ui.page.locator("tr[data-site]")).to_have_count(1)
    expect(ui.page.locator("tr[data-site='Quiet Yard']")).to_be_visible()
    ui.screenshot("ui-dashboard-filtered")

    # the site page: meters with status and latest values, heartbeat history
    ui.go(f"/sites/{site.site_id}")
    incomer = ui.page.locator("[data-meter='main-incomer']")
    expect(incomer.locator("tr[data-point='energy_kwh'] [data-testid=value]")).to_contain_text(
        "1,100.00"
    )
    expect(incomer.locator("tr[data-point='power_kw'] [data-testid=value]")).to_contain_text(
        "120.00"
    )
    expect(ui.page.locator("[data-meter='chiller-1'] .pill")).to_have_text("unreachable")
    expect(ui.page.locator("#heartbeats")).to_contain_text("250")
    expect(ui.page.locator("a:has-text('+ Add a meter')")).to_have_count(0)  # a viewer
    ui.screenshot("ui-site-page")
    assert quiet.site_id != site.site_id


def test_dashboard_shows_a_large_fleet_a_page_at_a_time_worst_first(ui: Ui) -> None:
    central = ui.central
    many = PAGE_SIZE + 2
    # the one site that sends a heartbeat is online: the best, so last, on the second page
    online = central.create_site("Site 00 online")
    for n in range(1, many):
        central.create_site(f"Site {n:02d}")
    send_heartbeat(central, online.api_key)
    central.create_user("viewer@example.com", PASSWORD, "viewer")

    ui.login("viewer@example.com")
    rows = ui.page.locator("tr[data-site]")
    expect(rows).to_have_count(PAGE_SIZE)
    expect(ui.page.get_by_test_id("sites-shown")).to_have_text(
        f"showing 1\N{EN DASH}{PAGE_SIZE} of {many} sites, worst first"
    )
    expect(rows.first).to_have_attribute("data-site", "Site 01")
    expect(ui.page.locator("tr[data-site='Site 00 online']")).to_have_count(0)
    # the figures are the whole fleet's, not the page's
    expect(ui.page.get_by_test_id("kpi-online")).to_have_text(re.compile(rf"^1\s*/ {many}$"))
    ui.page.click("a[rel=next]")
    expect(rows).to_have_count(2)
    expect(ui.page.get_by_test_id("sites-shown")).to_have_text(
        f"showing {PAGE_SIZE + 1}\N{EN DASH}{many} of {many} sites, worst first"
    )
    expect(rows.last).to_have_attribute("data-site", "Site 00 online")
    expect(ui.page.locator("a[rel=next]")).to_have_count(0)
    ui.screenshot("ui-dashboard-second-page")

    # a filter keeps to its matches and the pager keeps the filter
    ui.go("/?q=site+0&page=2")
    expect(ui.page.get_by_test_id("sites-shown")).to_have_text(
        "10 sites matching the filter, worst first"
    )
    expect(rows).to_have_count(10)
    # a page past the end shows the last one; a page that is not a number, the first
    ui.go("/?page=999")
    expect(rows).to_have_count(2)
    ui.go("/?page=two")
    expect(rows).to_have_count(PAGE_SIZE)
    ui.go("/?state=never")
    expect(ui.page.get_by_test_id("sites-shown")).to_have_text(
        f"showing 1\N{EN DASH}{PAGE_SIZE} of {many - 1} sites matching the filter, worst first"
    )
    ui.page.click("a[rel=next]")
    expect(rows).to_have_count(1)
    expect(ui.page.locator("select#state")).to_have_value("never")


def wait_for_state(ui: Ui, site: str, state: str, timeout: float) -> None:
    """Reload the dashboard until the site shows ``state`` (it refreshes itself every minute)."""
    deadline = time.monotonic() + timeout
    pill = ui.page.locator(f"tr[data-site='{site}'] .pill")
    while time.monotonic() < deadline:
        ui.go("/")
        if pill.inner_text().strip() == state:
            return
        time.sleep(2)
    raise AssertionError(f"{site} did not turn {state} within {timeout} s: {pill.inner_text()}")


@pytest.mark.slow
def test_site_turns_late_then_offline_when_heartbeats_stop(
    browser: Browser, make_central_server: Callable[..., CentralServer]
) -> None:
    # the smallest thresholds the settings accept: late after 30 s, offline after 60 s
    central = make_central_server(METERIT_HEARTBEAT_LATE_S="30", METERIT_HEARTBEAT_OFFLINE_S="60")
    site = central.create_site("Hilltop Farm")
    central.add_meter(site.site_id, "main-incomer", POINTS)
    central.create_user("operator@example.com", PASSWORD, "operator")
    send_readings(central, site.api_key, meter_readings("main-incomer", datetime.now(UTC)))
    send_heartbeat(central, site.api_key)
    stopped = time.monotonic()
    for session in ui_browser.open_ui(browser, central):
        session.login("operator@example.com")
        expect(session.page.locator("tr[data-site='Hilltop Farm'] .pill")).to_have_text("online")
        wait_for_state(session, "Hilltop Farm", "late", timeout=45)
        assert time.monotonic() - stopped >= 29
        row = session.page.locator("tr[data-site='Hilltop Farm']")
        expect(row).to_contain_text("since")
        session.screenshot("ui-dashboard-late")
        wait_for_state(session, "Hilltop Farm", "offline", timeout=45)
        assert time.monotonic() - stopped >= 59
        # its last readings still count in today's energy, though it no longer reports
        expect(row.get_by_test_id("energy-today")).not_to_have_text("—")
        expect(row).to_contain_text("0 / 1")
        session.screenshot("ui-dashboard-offline")
        # a heartbeat brings it back
        send_heartbeat(central, site.api_key)
        wait_for_state(session, "Hilltop Farm", "online", timeout=10)
