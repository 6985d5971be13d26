"""The local web UI in a real browser (Debian chromium, headless) against the real app under
gunicorn, simulated meters over real UDP, the real collector and worker, and a real central."""

from __future__ import annotations

import asyncio
import concurrent.futures
import re
from pathlib import Path
from typing import Any

import pytest
import requests
from playwright.sync_api import expect

from appliance.sync import heartbeat
from tests.mcp_helpers import ok, stdio_mcp
from tests.sync_helpers import assert_edge_equals_central
from tests.ui_browser import PASSWORD as CENTRAL_PASSWORD
from tests.ui_browser import open_ui
from tests.web_fixtures import (
    Site,
    add_central_meter,
    add_past_readings,
    log_in,
    screenshot,
)


def browser_of(page: Any) -> Any:
    return page.context.browser


pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _card(page: Any, external_id: str) -> Any:
    return page.locator(f'article.meter[data-meter="{external_id}"]')


def test_login_then_live_values_appear_and_update(site: Site, new_page: Any) -> None:
    # a day of history (already uploaded) so the charts have something to draw
    add_past_readings(site.appliance.settings.database_url, 1440, days_back=1.01, synced=True)
    page = log_in(new_page(), site.appliance.web_url)
    page.wait_for_url(re.compile(r"/$"))
    for external_id in site.meter_ids()[:3]:
        card = _card(page, external_id)
        card.locator('.badge[data-state="reachable"]').wait_for()
        power = f'article.meter[data-meter="{external_id}"] [data-point="power_kw"] .v'
        page.wait_for_function(
            "sel => /\\d/.test(document.querySelector(sel).textContent)", arg=power
        )
    power = 'article.meter[data-meter="sim-3001"] [data-point="power_kw"] .v'
    before = page.locator(power).inner_text()
    # the meter's power wanders from poll to poll: the page follows without a reload
    page.wait_for_function(
        "([sel, before]) => document.querySelector(sel).textContent !== before",
        arg=[power, before],
    )
    assert page.locator('[data-point="power_kw"] .u').first.inner_text() == "kW"
    page.locator("article.meter .chart canvas").first.wait_for()
    screenshot(page, "dashboard")

    phone = log_in(new_page(width=390, height=844, mobile=True), site.appliance.web_url)
    _card(phone, "sim-3001").locator('.badge[data-state="reachable"]').wait_for()
    phone.locator("article.meter .chart canvas").first.wait_for()
    screenshot(phone, "dashboard-phone", full_page=False)


def test_meter_taken_offline_turns_unreachable_on_the_page(site: Site, new_page: Any) -> None:
    page = log_in(new_page(), site.appliance.web_url)
    card = _card(page, "sim-3002")
    card.locator('.badge[data-state="reachable"]').wait_for()
    site.sims.set_offline(3002, True)
    card.locator('.badge[data-state="unreachable"]').wait_for(timeout=30_000)
    assert "no answer" in card.locator(".error").inner_text()
    assert _card(page, "sim-3001").locator(".badge").get_attribute("data-state") == "reachable"
    screenshot(page, "dashboard-meter-offline")

    page.click('article.meter[data-meter="sim-3002"] a.name')
    page.wait_for_url(re.compile(r"/meters/sim-3002$"))
    page.locator('#meter-state[data-state="unreachable"]').wait_for()
    page.locator("#errors .errline").first.wait_for()
    page.locator("#chart canvas").wait_for()
    screenshot(page, "meter-unreachable")

    site.sims.set_offline(3002, False)
    page.locator('#meter-state[data-state="reachable"]').wait_for(timeout=30_000)


def test_a_meter_answering_without_values_is_shown_so_everywhere(
    site: Site, new_page: Any, tmp_path: Path
) -> None:
    """It used to show green 'Reachable' here, 'reachable' in MCP and central: now the local UI,
    MCP, the heartbeat and central's site page all say it answers without values."""
    page = log_in(new_page(), site.appliance.web_url)
    card = _card(page, "sim-3003")
    card.locator('.badge[data-state="reachable"]').wait_for()
    site.sims.set_unknown_properties(3003, ("present-value",))
    card.locator('.badge[data-state="no-values"]').wait_for(timeout=30_000)
    assert card.locator(".badge").inner_text() == "Answers, no values"
    assert "answers but gave no value" in card.locator(".error").inner_text()
    assert _card(page, "sim-3001").locator(".badge").get_attribute("data-state") == "reachable"
    screenshot(page, "dashboard-meter-no-values")

    async def through_mcp() -> dict[str, Any]:
        async with stdio_mcp(site.appliance.env, tmp_path / "mcp.err") as client:
            return ok(await client.call_tool("get_meter_status", {"meter": "sim-3003"}))

    # Playwright's sync API holds this thread's event loop: the MCP client gets its own thread
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        answer = pool.submit(asyncio.run, through_mcp()).result(timeout=120)
    assert [m["state"] for m in answer["meters"]] == ["no-values"]

    assert heartbeat.send(site.appliance.settings) is not None
    site.central.create_user("ops@example.com", CENTRAL_PASSWORD, "viewer")
    for central_page in open_ui(browser_of(page), site.central):
        central_page.login("ops@example.com")
        central_page.go(f"/sites/{site.key.site_id}")
        expect(central_page.page.locator("[data-meter='sim-3003'] .pill")).to_have_text("no-values")
        central_page.go("/")
        row = central_page.page.locator("tr[data-site='plant-north']")
        expect(row).to_contain_text("sim-3003")  # listed among the meters giving nothing


def test_sync_now_drains_the_backlog_to_central(site: Site, new_page: Any) -> None:
    appliance = site.appliance
    page = log_in(new_page(), appliance.web_url)
    page.goto(appliance.web_url + "/sync")
    page.click("#btn-pause-collection")
    page.locator("#btn-resume-collection").wait_for(state="visible")
    assert appliance.sql("SELECT collection_paused FROM appliance_state")[0][0] is True
    queued = add_past_readings(appliance.settings.database_url, per_point=300)
    page.wait_for_function(
        "n => Number(document.getElementById('backlog').dataset.backlog) >= n", arg=queued
    )
    screenshot(page, "sync-backlog")

    page.click("#btn-sync-now")
    expect(page.locator("#action-info")).to_contain_text("Upload run queued")
    page.wait_for_function(
        "() => document.getElementById('backlog').dataset.backlog === '0'", timeout=60_000
    )
    page.wait_for_function(
        "n => parseInt(document.getElementById('synced-counts').textContent.replace(/[^0-9 ]/g, '')) >= n",
        arg=queued,
    )
    assert "ago" in page.locator("#last-sync").inner_text()
    screenshot(page, "sync-drained")
    assert_edge_equals_central(appliance.settings.database_url, site.central, site.key.site_id)

    page.click("#btn-resume-collection")
    page.locator("#btn-pause-collection").wait_for(state="visible")


def test_sync_meters_now_shows_the_counts(site: Site, new_page: Any) -> None:
    page = log_in(new_page(), site.appliance.web_url)
    page.goto(site.appliance.web_url + "/sync")
    assert page.locator("#active-meters").inner_text() == "3"
    add_central_meter(site.central, site.key.site_id, site.sims.specs[3])

    page.click("#btn-meter-sync")
    result = page.locator("#meter-sync-result")
    result.wait_for(state="visible", timeout=60_000)
    assert result.get_attribute("data-result") == "ok", result.inner_text()
    assert "1 inserted, 0 updated, 0 deactivated" in result.inner_text()
    assert page.locator("#active-meters").inner_text() == "4"
    assert page.locator("#btn-meter-sync").is_enabled()
    screenshot(page, "sync-meters-done")
    phone = log_in(new_page(width=390, height=844, mobile=True), site.appliance.web_url)
    phone.goto(site.appliance.web_url + "/sync")
    phone.locator("#btn-meter-sync").wait_for()
    screenshot(phone, "sync-phone")

    # the new meter is polled without restarting anything
    page.goto(site.appliance.web_url + "/")
    _card(page, "sim-3004").locator('.badge[data-state="reachable"]').wait_for(timeout=30_000)


def test_sync_meters_now_says_when_another_run_is_in_progress(site: Site, new_page: Any) -> None:
    page = log_in(new_page(), site.appliance.web_url)
    page.goto(site.appliance.web_url + "/sync")
    # a run that another process (cron, the CLI) is in the middle of, as its log row says
    site.appliance.sql("INSERT INTO meter_sync_log (result) VALUES ('running')")
    page.locator("#btn-meter-sync.loading").wait_for()  # the page shows the run going on
    site.appliance.sql(
        "UPDATE meter_sync_log SET result = 'ok', finished_at = now() WHERE result = 'running'"
    )
    page.locator("#btn-meter-sync:not(.loading)").wait_for()
    site.appliance.sql("INSERT INTO meter_sync_log (result) VALUES ('running')")
    answer = page.evaluate(
        """async () => {
            const r = await fetch('/api/local/meter-sync-trigger', {method: 'POST',
              headers: {'X-CSRFToken': document.querySelector('meta[name=csrf-token]').content}});
            return [r.status, (await r.json()).error];
        }"""
    )
    assert answer[0] == 409 and "already running" in answer[1]
    site.appliance.sql(
        "UPDATE meter_sync_log SET result = 'ok', finished_at = now() WHERE result = 'running'"
    )
    page.locator("#btn-meter-sync:not(.loading)").wait_for()


def test_sync_meters_now_shows_a_clear_error_when_central_fails(site: Site, new_page: Any) -> None:
    page = log_in(new_page(), site.appliance.web_url)
    page.goto(site.appliance.web_url + "/sync")
    site.central.stop()  # central goes away: the pull fails
    page.click("#btn-meter-sync")
    result = page.locator("#meter-sync-result")
    result.wait_for(state="visible", timeout=90_000)
    assert result.get_attribute("data-result") == "error"
    assert result.inner_text().startswith("Meter sync failed:")
    screenshot(page, "sync-meters-failed")


def test_health_answers_without_login_and_the_api_does_not(site: Site) -> None:
    base = site.appliance.web_url
    assert requests.get(base + "/health", timeout=5).json()["status"] == "ok"
    assert requests.get(base + "/api/local/meters", timeout=5).status_code == 401
    ok = requests.get(
        base + "/api/local/meters", auth=("admin", "correct-horse-battery-staple"), timeout=5
    )
    assert ok.status_code == 200 and len(ok.json()["meters"]) == 3
