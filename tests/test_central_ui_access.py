"""Who may do what in the operator UI: roles, tenant isolation and CSRF, in a real browser
against central under gunicorn."""

from __future__ import annotations

from collections.abc import Callable

import psycopg
import pytest
import requests
from playwright.sync_api import Browser, expect

from tests import ui_browser
from tests.central_fixtures import (
    CentralServer,
)
from tests.harness import (
    scalar,
)
from tests.ui_browser import (
    PASSWORD,
    POINTS,
    Ui,
    send_heartbeat,
    sync_config,
)

pytestmark = pytest.mark.browser


def csrf_token(ui: Ui) -> str:
    """The session's CSRF token, as every form of the page carries it."""
    return ui.page.locator("input[name=csrf_token]").first.get_attribute("value") or ""


def post(ui: Ui, path: str, form: dict[str, str], *, token: bool = True) -> int:
    """A form POST from the signed-in browser session (cookies included)."""
    fields: dict[str, str | float | bool] = dict(form)
    if token:
        fields["csrf_token"] = csrf_token(ui)
    response = ui.page.request.post(ui.central.url(path), form=fields, max_redirects=0)
    return response.status


def audit_count(central: CentralServer) -> int:
    with psycopg.connect(central.db_url) as conn:
        return int(scalar(conn, "SELECT count(*) FROM audit_log"))


def test_a_viewer_can_look_but_not_change_anything(ui: Ui) -> None:
    central = ui.central
    site = central.create_site("Old Quay")
    meter_id = central.add_meter(site.site_id, "main-incomer", POINTS)
    central.create_user("viewer@example.com", PASSWORD, "viewer")
    send_heartbeat(central, site.api_key)
    before = audit_count(central)
    ui.login("viewer@example.com")
    expect(ui.page.locator("a:has-text('Register a site')")).to_have_count(0)
    ui.go(f"/sites/{site.site_id}")
    expect(ui.page.locator("h1")).to_contain_text("Old Quay")
    for label in ("Add a meter", "Edit", "Deactivate", "Rotate key", "Revoke"):
        expect(ui.page.locator(f"button:has-text('{label}'), a:has-text('{label}')")).to_have_count(
            0
        )
    ui.screenshot("ui-viewer-site-page")
    for path in ("/sites/new", f"/sites/{site.site_id}/meters/new", f"/meters/{meter_id}/edit"):
        assert ui.page.goto(central.url(path)).status == 403, path  # type: ignore[union-attr]
    expect(ui.page.locator("h1")).to_contain_text("Not allowed")
    ui.screenshot("ui-viewer-forbidden")
    ui.go(f"/sites/{site.site_id}")
    attempts = {
        "/sites/new": {"name": "Sneaky"},
        f"/sites/{site.site_id}/keys/rotate": {"overlap_hours": "1"},
        f"/sites/{site.site_id}/keys/revoke": {},
        f"/meters/{meter_id}/deactivate": {},
        f"/meters/{meter_id}/edit": {"external_id": "renamed"},
        f"/sites/{site.site_id}/meters/new": {"external_id": "extra"},
    }
    for path, form in attempts.items():
        assert post(ui, path, form) == 403, path
    assert audit_count(central) == before, "a refused change left an audit entry"
    assert sync_config(central, site.api_key).json()["meters"][0]["external_id"] == "main-incomer"


def test_an_operator_manages_meters_but_not_keys_or_sites(ui: Ui) -> None:
    central = ui.central
    site = central.create_site("Old Quay")
    central.create_user("operator@example.com", PASSWORD, "operator")
    ui.login("operator@example.com")
    ui.go(f"/sites/{site.site_id}")
    expect(ui.page.locator("a:has-text('Add a meter')")).to_be_visible()
    expect(ui.page.locator("button:has-text('Rotate key')")).to_have_count(0)
    assert post(ui, f"/sites/{site.site_id}/keys/rotate", {}) == 403
    assert post(ui, f"/sites/{site.site_id}/keys/revoke", {}) == 403
    assert post(ui, "/sites/new", {"name": "Another"}) == 403
    assert sync_config(central, site.api_key).status_code == 200


def test_another_tenants_site_is_not_found_by_page_or_url(ui: Ui) -> None:
    central = ui.central
    mine = central.create_site("Home Base")
    theirs = central.create_site("Rival Plant", tenant="other-tenant")
    their_meter = central.add_meter(theirs.site_id, "their-meter", POINTS)
    with psycopg.connect(central.db_url) as conn:
        their_point = scalar(
            conn, "SELECT id FROM meter_points WHERE meter_id = %s", (their_meter,)
        )
    central.create_user("admin@example.com", PASSWORD, "admin")
    before = audit_count(central)
    ui.login("admin@example.com")
    expect(ui.page.locator("tr[data-site='Home Base']")).to_be_visible()
    expect(ui.page.locator("tr[data-site='Rival Plant']")).to_have_count(0)
    ui.go("/explorer")
    expect(ui.page.locator("#site option")).to_have_text(["choose a site…", "Home Base"])
    for path in (
        f"/sites/{theirs.site_id}",
        f"/meters/{their_meter}/edit",
        f"/explorer?site={theirs.site_id}",
        f"/explorer/export.csv?site={theirs.site_id}&point={their_point}&range=24h",
        f"/explorer/export.csv?site={mine.site_id}&point={their_point}&range=24h",
        f"/sites/{theirs.site_id + 1000}",
    ):
        assert ui.page.goto(central.url(path)).status == 404, path  # type: ignore[union-attr]
    expect(ui.page.locator("h1")).to_contain_text("Not found")
    ui.screenshot("ui-other-tenant-404")
    ui.go("/")
    for path in (
        f"/sites/{theirs.site_id}/keys/rotate",
        f"/sites/{theirs.site_id}/keys/revoke",
        f"/meters/{their_meter}/deactivate",
        f"/meters/{their_meter}/edit",
        f"/sites/{theirs.site_id}/meters/new",
    ):
        assert post(ui, path, {"external_id": "x"}) == 404, path
    assert audit_count(central) == before
    assert sync_config(central, theirs.api_key).json()["meters"][0]["external_id"] == "their-meter"


def test_forms_need_the_csrf_token_and_the_json_apis_do_not(ui: Ui) -> None:
    central = ui.central
    central.create_user("admin@example.com", PASSWORD, "admin")
    ui.login("admin@example.com")
    assert post(ui, "/sites/new", {"name": "Forged"}, token=False) == 400
    assert post(ui, "/sites/new", {"name": "Forged"}, token=True) == 200
    with psycopg.connect(central.db_url) as conn:
        assert scalar(conn, "SELECT count(*) FROM sites WHERE name = 'Forged'") == 1
    # a forged sign-out is refused too: state-changing requests all carry the token
    assert post(ui, "/logout", {}, token=False) == 400
    # the APIs authenticate by header and take no CSRF token
    created = requests.post(
        central.url("/api/v1/sites"),
        json={"name": "Scripted"},
        auth=("admin@example.com", PASSWORD),
        timeout=10,
    )
    assert created.status_code == 201, created.text
    assert send_heartbeat(central, created.json()["api_key"])["received_at"]


def test_a_session_holds_across_gunicorn_workers(
    browser: Browser, make_central_server: Callable[..., CentralServer]
) -> None:
    """Without a configured secret key every worker must still sign sessions with the same one."""
    central = make_central_server(METERIT_GUNICORN_WORKERS="2")
    central.create_user("viewer@example.com", PASSWORD, "viewer")
    for session in ui_browser.open_ui(browser, central):
        session.login("viewer@example.com")
        for _ in range(12):  # new connections land on either worker
            response = session.page.request.get(
                central.url("/audit"), headers={"Connection": "close"}, max_redirects=0
            )
            assert response.status == 200, "signed out by another worker"
