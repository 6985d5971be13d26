"""Operator UI in a real browser against central under gunicorn: site registration, API keys,
meter configuration, the audit log."""

from __future__ import annotations

import pytest
import requests
from playwright.sync_api import expect

from tests.ui_browser import (
    PASSWORD,
    POINTS,
    Ui,
    sync_config,
)

pytestmark = pytest.mark.browser


def test_sign_in_is_required_and_wrong_passwords_are_refused(ui: Ui) -> None:
    ui.central.create_user("admin@example.com", PASSWORD, "admin")
    ui.go("/")
    expect(ui.page).to_have_url(ui.central.url("/login?next=%2F"))
    ui.page.fill("#email", "admin@example.com")
    ui.page.fill("#password", "not the password")
    ui.page.click("button[type=submit]")
    expect(ui.page.locator(".flash.error")).to_contain_text("Wrong e-mail or password")
    ui.screenshot("ui-login-refused")
    ui.login("admin@example.com")
    expect(ui.page.locator("h1")).to_have_text("Fleet")
    expect(ui.page.get_by_test_id("role")).to_have_text("admin")
    ui.logout()
    ui.go("/")
    expect(ui.page.locator("#email")).to_be_visible()


def test_registering_a_site_shows_its_key_once_and_the_key_works(ui: Ui) -> None:
    ui.central.create_user("admin@example.com", PASSWORD, "admin")
    ui.login("admin@example.com")
    ui.page.click("text=+ Register a site")
    ui.page.fill("#name", "Harbour Plant")
    ui.page.click("button:has-text('Register site')")
    key = ui.page.get_by_test_id("api-key").inner_text().strip()
    assert key.startswith("mtk_")
    expect(ui.page.locator(".warning-box")).to_contain_text("shown only this once")
    ui.page.click("button[data-copy]")
    expect(ui.page.locator("button[data-copy]")).to_have_text("Copied ✓")
    ui.screenshot("ui-site-registered-key-once")
    # the key is what the appliance uses
    auth = requests.post(
        ui.central.url("/api/v1/sync/auth"), headers={"X-API-Key": key}, timeout=10
    )
    assert auth.status_code == 200 and auth.json()["site_name"] == "Harbour Plant"
    # ... and it is never shown again: not on the site page, not anywhere we can navigate to
    ui.page.click("text=I have copied the key")
    expect(ui.page.locator("h1")).to_contain_text("Harbour Plant")
    assert key not in ui.page.content()
    assert key[:12] in ui.page.content()  # the prefix names it
    ui.go("/audit")
    expect(ui.page.locator("#audit-log")).to_contain_text("site.create")
    assert key not in ui.page.content()
    # a second site with the same name is refused, saying why
    ui.go("/sites/new")
    ui.page.fill("#name", "Harbour Plant")
    ui.page.click("button:has-text('Register site')")
    expect(ui.page.locator(".flash.error")).to_contain_text("already has a site named")


def test_rotate_shows_the_overlap_and_revoke_refuses_the_key_at_once(ui: Ui) -> None:
    central = ui.central
    site = central.create_site("North Depot")
    central.create_user("admin@example.com", PASSWORD, "admin")
    ui.login("admin@example.com")
    ui.go(f"/sites/{site.site_id}")
    ui.page.fill("#overlap_hours", "2")
    ui.page.click("#rotate-form button[type=submit]")
    new_key = ui.page.get_by_test_id("api-key").inner_text().strip()
    expect(ui.page.get_by_test_id("overlap")).to_contain_text("2.0 h")
    expect(ui.page.locator("body")).to_contain_text(f"{site.key_prefix} works until")
    ui.screenshot("ui-key-rotated-overlap")
    # both keys work during the overlap
    for key in (site.api_key, new_key):
        assert sync_config(central, key).status_code == 200
    ui.page.click("text=I have copied the key")
    old_row = ui.page.locator(f"tr[data-key='{site.key_prefix}']")
    expect(old_row.locator(".pill")).to_have_text("expiring")
    old_row.locator("button:has-text('Revoke')").click()
    expect(ui.page.locator(".flash.success")).to_contain_text(f"Revoked {site.key_prefix}")
    expect(old_row.locator(".pill")).to_have_text("revoked")
    refused = sync_config(central, site.api_key)
    assert refused.status_code == 401 and "revoked" in refused.json()["error"]
    assert sync_config(central, new_key).status_code == 200
    expect(ui.page.locator("#audit")).to_contain_text("key.revoke")
    expect(ui.page.locator("#audit")).to_contain_text("key.rotate")
    ui.screenshot("ui-key-revoked")


def test_editing_a_meter_changes_the_config_the_appliance_pulls(ui: Ui) -> None:
    central = ui.central
    site = central.create_site("Mill Lane")
    central.add_meter(site.site_id, "main-incomer", POINTS, address="10.0.0.5:47808")
    central.create_user("operator@example.com", PASSWORD, "operator")
    before = sync_config(central, site.api_key)
    etag = before.headers["ETag"]
    assert sync_config(central, site.api_key, etag).status_code == 304
    ui.login("operator@example.com")
    ui.go(f"/sites/{site.site_id}")
    ui.page.locator("[data-meter='main-incomer'] a:has-text('Edit')").click()
    ui.page.fill("#name", "Main incomer, board A")
    ui.page.fill("#device_instance", "1001")
    # add a data point in the first empty row, drop power_kw
    ui.page.locator("tr:has(input[name=point_name][value='power_kw']) [data-clear-row]").click()
    empty = ui.page.locator("table.points tbody tr").nth(2)
    empty.locator("input[name=point_name]").fill("voltage_l1_v")
    empty.locator("input[name=point_object]").fill("analog-input,3")
    empty.locator("input[name=point_unit]").fill("V")
    ui.screenshot("ui-meter-edit-form")
    ui.page.click("button:has-text('Save meter')")
    expect(ui.page.locator(".flash.success")).to_contain_text("main-incomer saved")
    after = sync_config(central, site.api_key, etag)
    assert after.status_code == 200, "the ETag must change with the meter"
    meter = after.json()["meters"][0]
    assert meter["name"] == "Main incomer, board A"
    assert meter["device_instance"] == 1001
    assert [p["name"] for p in meter["points"]] == ["energy_kwh", "voltage_l1_v"]
    # a bad definition is refused naming the field, and nothing changes
    ui.page.locator("[data-meter='main-incomer'] a:has-text('Edit')").click()
    ui.page.locator("table.points tbody tr").nth(0).locator("input[name=point_object]").fill("coil")
    ui.page.click("button:has-text('Save meter')")
    expect(ui.page.locator(".flash.error")).to_contain_text("points[0].object")
    ui.screenshot("ui-meter-edit-refused")
    assert sync_config(central, site.api_key, after.headers["ETag"]).status_code == 304
    # add a second meter, then deactivate the first: the appliance stops getting it
    ui.go(f"/sites/{site.site_id}/meters/new")
    ui.page.fill("#external_id", "pv-inverter")
    row = ui.page.locator("table.points tbody tr").nth(0)
    row.locator("input[name=point_name]").fill("energy_kwh")
    row.locator("input[name=point_object]").fill("analog-input,7")
    row.locator("input[name=point_unit]").fill("kWh")
    ui.page.click("button:has-text('Add meter')")
    # central refuses what no appliance could poll (appliances apply the very same checks)
    expect(ui.page.locator(".flash.error")).to_contain_text("give an address")
    ui.page.fill("#address", "192.168.1.31:47808")
    ui.page.click("button:has-text('Add meter')")
    expect(ui.page.locator("[data-meter='pv-inverter']")).to_be_visible()
    ui.page.locator("[data-meter='main-incomer'] button:has-text('Deactivate')").click()
    expect(ui.page.locator(".flash.success")).to_contain_text("main-incomer deactivated")
    pulled = sync_config(central, site.api_key).json()["meters"]
    assert [m["external_id"] for m in pulled] == ["pv-inverter"]
    ui.screenshot("ui-site-meters-after-edit")
    ui.go("/audit")
    log = ui.page.locator("#audit-log")
    for action in ("meter.update", "meter.create", "meter.deactivate"):
        expect(log).to_contain_text(action)
    expect(log).to_contain_text("user:operator@example.com")
    ui.screenshot("ui-audit-log")


def test_changing_the_password_signs_in_with_the_new_one_only(ui: Ui) -> None:
    ui.central.create_user("viewer@example.com", PASSWORD, "viewer")
    ui.login("viewer@example.com")
    ui.go("/account")
    ui.page.fill("#current_password", "wrong password")
    ui.page.fill("#new_password", "a much better one")
    ui.page.fill("#new_password_again", "a much better one")
    ui.page.click("button:has-text('Change password')")
    expect(ui.page.locator(".flash.error")).to_contain_text("current password is wrong")
    ui.page.fill("#current_password", PASSWORD)
    ui.page.fill("#new_password", "a much better one")
    ui.page.fill("#new_password_again", "a much better one")
    ui.page.click("button:has-text('Change password')")
    expect(ui.page.locator(".flash.success")).to_contain_text("Password changed")
    ui.screenshot("ui-password-changed")
    ui.go("/")  # the session carried on
    expect(ui.page.locator("h1")).to_have_text("Fleet")
    ui.logout()
    ui.page.fill("#email", "viewer@example.com")
    ui.page.fill("#password", PASSWORD)
    ui.page.click("button[type=submit]")
    expect(ui.page.locator(".flash.error")).to_be_visible()
    ui.login("viewer@example.com", "a much better one")
    expect(ui.page.locator("h1")).to_have_text("Fleet")
