"""Both UIs at phone width (360 and 430 px), every signed-in page (issue #22): nothing wider than
the screen, Sign out / Log out on the screen and clickable, chart labels apart, tables scrolling
inside their own box. Each page's screenshot is kept in artifacts/screenshots/."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from playwright.sync_api import Browser

from tests.alert_helpers import Fleet
from tests.central_fixtures import CentralServer
from tests.phone_width import PHONE_WIDTHS, problems
from tests.ui_browser import (
    PASSWORD,
    POINTS,
    Ui,
    meter_readings,
    run_rollup,
    send_heartbeat,
    send_readings,
)
from tests.web_fixtures import Site, add_past_readings, log_in, screenshot

pytestmark = pytest.mark.browser


def central_pages(central: CentralServer) -> list[str]:
    """A tenant with what every page shows: sites with readings and heartbeats, a firing alert,
    a rule; the paths of its signed-in pages."""
    site = central.create_site("Riverside Works — main plant and cold store")
    for meter in ("main-incomer", "chiller-1"):
        central.add_meter(site.site_id, meter, POINTS, address="10.0.0.5:47808")
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    items = meter_readings("main-incomer", now, count=72, step=timedelta(minutes=5))
    items += meter_readings("chiller-1", now, count=72, step=timedelta(minutes=5))
    send_readings(central, site.api_key, items)
    for backlog in (120, 40, 0):
        send_heartbeat(central, site.api_key, backlog=backlog, unreachable=("chiller-1",))
    run_rollup(central)
    quiet = central.create_site("Quiet Yard")
    fleet = Fleet(central.db_url, tenant_id=site.tenant_id, site_ids={"Quiet Yard": quiet.site_id})
    fleet.heartbeat("Quiet Yard", now - timedelta(minutes=45))
    fleet.evaluate(now)
    with psycopg.connect(central.db_url) as conn:
        meter_id, point_ids = conn.execute(
            "SELECT m.id, array_agg(p.id ORDER BY p.id) FROM meters m"
            " JOIN meter_points p ON p.meter_id = m.id WHERE m.site_id = %s"
            " GROUP BY m.id ORDER BY m.id LIMIT 1",
            (site.site_id,),
        ).fetchone() or (0, [])
        alert_id = conn.execute("SELECT max(id) FROM alert_instances").fetchone()
        rule_id = conn.execute("SELECT min(id) FROM alert_rules").fetchone()
    points = "&".join(f"point={p}" for p in point_ids)
    return [
        "/",
        f"/sites/{site.site_id}",
        "/sites/new",
        f"/sites/{site.site_id}/meters/new",
        f"/meters/{meter_id}/edit",
        "/explorer",
        f"/explorer?site={site.site_id}&{points}&range=6h",
        f"/explorer?site={site.site_id}&{points}&range=30d",
        "/alerts",
        *([f"/alerts/{alert_id[0]}"] if alert_id and alert_id[0] else []),
        "/alerts/rules",
        "/alerts/rules/new",
        *([f"/alerts/rules/{rule_id[0]}"] if rule_id and rule_id[0] else []),
        "/alerts/silences",
        "/reports",
        "/audit",
        "/accounts",
        "/account",
        "/account/mcp-tokens",
    ]


@pytest.mark.parametrize("width", PHONE_WIDTHS)
def test_every_operator_page_works_at_phone_width(
    browser: Browser, central_server: CentralServer, width: int
) -> None:
    central_server.create_user("admin-with-a-long-address@example.com", PASSWORD, "admin")
    paths = central_pages(central_server)
    context = browser.new_context(
        viewport={"width": width, "height": 800}, is_mobile=True, has_touch=True
    )
    try:
        page = context.new_page()
        page.set_default_timeout(15000)
        ui = Ui(central_server, page)
        ui.login("admin-with-a-long-address@example.com")
        found = {}
        for n, path in enumerate(paths):
            ui.go(path)
            page.wait_for_load_state("load")
            page.wait_for_timeout(300)  # charts draw after load
            bad = problems(page, width, "header.topbar button:has-text('Sign out')")
            ui.screenshot(f"phone-{width}-central-{n:02d}")
            if bad:
                found[path] = bad
        assert not found, "\n".join(f"{p}: {'; '.join(b)}" for p, b in found.items())
        ui.logout()  # and it really signs out
    finally:
        context.close()


@pytest.mark.parametrize("width", PHONE_WIDTHS)
def test_every_local_page_works_at_phone_width(
    site: Site, edge_db_url: str, new_page: Callable[..., Any], width: int
) -> None:
    add_past_readings(edge_db_url, per_point=600, days_back=0.5, synced=True)
    url = site.appliance.web_url
    meter = site.meter_ids()[0]
    page = log_in(new_page(width=width, height=800, mobile=True), url)
    page.wait_for_selector(".meter")
    found = {}
    for n, path in enumerate(["/", f"/meters/{meter}", "/sync", "/checks", "/password"]):
        page.goto(url + path)
        page.wait_for_load_state("networkidle")
        page.wait_for_timeout(500)  # charts draw from the API's answers
        bad = problems(page, width, "header.topbar button:has-text('Log out')")
        screenshot(page, f"phone-{width}-local-{n:02d}")
        if bad:
            found[path] = bad
    assert not found, "\n".join(f"{p}: {'; '.join(b)}" for p, b in found.items())
    page.click("header.topbar button:has-text('Log out')")
    page.wait_for_selector("#password")
