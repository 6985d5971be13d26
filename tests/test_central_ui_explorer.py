"""The readings explorer in a real browser: pick site, data points and range -> chart, table,
streamed CSV export of every reading."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import expect

from tests.ui_browser import (
    PASSWORD,
    POINTS,
    Ui,
    meter_readings,
    run_rollup,
    send_readings,
)

pytestmark = pytest.mark.browser


def test_explorer_charts_tabulates_and_exports_the_selection(ui: Ui) -> None:
    central = ui.central
    site = central.create_site("Canal Street")
    central.add_meter(site.site_id, "main-incomer", POINTS, name="Main incomer")
    central.add_meter(site.site_id, "lift", POINTS)
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    items = meter_readings("main-incomer", now, count=180, step=timedelta(minutes=1))
    items += meter_readings("lift", now, count=180, step=timedelta(minutes=1))
    send_readings(central, site.api_key, items)
    central.create_user("viewer@example.com", PASSWORD, "viewer")
    ui.login("viewer@example.com")

    ui.page.click("text=Readings explorer")
    ui.page.select_option("#site", label="Canal Street")  # submits itself
    ui.page.wait_for_selector(".point-pick")
    pick = ui.page.locator(".point-pick")
    pick.locator("label:has-text('energy_kwh') input").first.check()  # lift's (by name)
    pick.locator("label:has-text('power_kw') input").nth(1).check()  # main-incomer's
    ui.page.select_option("#range", "6h")
    ui.page.click("button:has-text('Show')")
    expect(ui.page.locator("h2").first).to_contain_text("every reading")
    expect(ui.page.locator("h2").first).to_contain_text("360 rows")
    table = ui.page.locator("#readings")
    expect(table.locator("thead")).to_contain_text("lift / energy_kwh (kWh)")
    expect(table.locator("thead")).to_contain_text("main-incomer / power_kw (kW)")
    expect(table.locator("tbody tr").first).to_contain_text("2,790.000")  # 1000 + 10 * 179
    expect(ui.page.locator("canvas[data-chart='explorer']")).to_be_visible()
    ui.screenshot("ui-explorer-raw")

    with ui.page.expect_download() as info:
        ui.page.click("#export")
    download = info.value
    assert download.suggested_filename.startswith("meterit-Canal_Street-")
    rows = list(csv.reader(io.StringIO(download.path().read_text())))
    assert rows[0] == ["ts", "site", "meter", "point", "value", "unit"]
    assert len(rows) == 1 + 360
    assert {(r[2], r[3]) for r in rows[1:]} == {
        ("lift", "energy_kwh"),
        ("main-incomer", "power_kw"),
    }
    assert rows[-1][0].endswith("Z") and rows[1][0] <= rows[-1][0]

    # a month is drawn in hourly means: hours the rollup job has not settled are aggregated
    # from the raw readings, the others come from the rollup
    hours = len({(r[0][:13]) for r in rows[1:]})
    ui.page.select_option("#range", "30d")
    ui.page.click("button:has-text('Show')")
    expect(ui.page.locator("h2").first).to_contain_text("hourly means")
    expect(ui.page.locator("#readings tbody tr")).to_have_count(hours)
    before = ui.page.locator("#readings tbody").inner_text()
    run_rollup(central)
    ui.page.reload()
    expect(ui.page.locator("#readings tbody tr")).to_have_count(hours)
    assert ui.page.locator("#readings tbody").inner_text() == before
    ui.screenshot("ui-explorer-month")
