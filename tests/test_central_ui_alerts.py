"""The alert pages in Chromium: the dashboard and site page show firing alerts, the Alerts page
acknowledges, a rule is tested against current data and saved, a silence mutes — audited,
and usable on a phone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg

from tests.alert_helpers import (
    Fleet,
)
from tests.ui_browser import (
    PASSWORD,
    Ui,
)


def test_firing_alerts_show_and_are_acknowledged_rules_tested_and_silenced(ui: Ui) -> None:
    central = ui.central
    central.create_user("admin@example.com", PASSWORD, "admin")
    quiet = central.create_site("Quiet plant")
    central.create_site("Busy plant")
    fleet = Fleet(
        central.db_url, tenant_id=quiet.tenant_id, site_ids={"Quiet plant": quiet.site_id}
    )
    now = datetime.now(UTC)
    fleet.heartbeat("Quiet plant", now - timedelta(minutes=45))
    assert fleet.evaluate(now).changes == {"pending": 0, "firing": 1, "resolved": 0, "cleared": 0}

    ui.login("admin@example.com")
    page = ui.go("/")
    assert "1 alert firing" in page.inner_text("[data-testid=firing-alerts]")
    assert page.inner_text("tr[data-site='Quiet plant'] [data-testid=site-alerts]") == "1 firing"
    page.click("tr[data-site='Quiet plant'] a >> text=Quiet plant")
    assert "no heartbeat from site Quiet plant" in page.inner_text("#alerts")

    page = ui.go("/alerts")
    row = page.locator("tr[data-kind=heartbeat_missing]")
    assert "Site heartbeat missing" in row.inner_text()
    row.locator("button", has_text="Acknowledge").click()
    assert "acknowledged by user:admin@example.com" in page.inner_text("#alerts")

    # a rule tested against the current data finds the quiet site, and nothing is saved
    page = ui.go("/alerts/rules/new")
    page.fill("#name", "Quiet for 30 min")
    page.select_option("#kind", "heartbeat_missing")
    page.fill("#p_heartbeat_missing_minutes", "30")
    page.click("button[value=test]")
    result = page.inner_text("[data-testid=test-result]")
    assert "finds 1 thing" in result and "Quiet plant" in result and "Busy plant" not in result
    page.fill("#p_heartbeat_missing_minutes", "abc")
    page.click("button[value=test]")
    assert "params.minutes" in page.inner_text("[data-testid=problems]")
    page.fill("#p_heartbeat_missing_minutes", "30")
    page.click("button[value=save]")
    assert page.locator("tr[data-rule='Quiet for 30 min']").count() == 1

    page = ui.go("/alerts/silences")
    page.select_option("#s_site", label="Quiet plant")
    page.fill("#s_comment", "new router")
    page.click("button:has-text('Silence')")
    assert "new router" in page.inner_text("#silences")
    page = ui.go("/alerts?tab=muted")
    assert page.locator("tr[data-kind=heartbeat_missing]").count() == 1

    page.set_viewport_size({"width": 360, "height": 780})
    for path in ("/alerts", "/alerts/rules", "/alerts/silences"):
        page = ui.go(path)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 360, f"{path} scrolls sideways on a phone ({width}px)"
    ui.screenshot("alerts-phone")

    with psycopg.connect(central.db_url) as conn:
        actions = {r[0] for r in conn.execute("SELECT action FROM audit_log")}
    assert {"alert.acknowledge", "alert_rule.create", "silence.create"} <= actions
