"""Who may use the local web UI: a wrong password and a forged (token-less) request are refused,
in a real browser against the real app under gunicorn."""

from __future__ import annotations

import re
from typing import Any

import pytest
import requests

from tests.web_fixtures import (
    PASSWORD,
    Appliance,
    log_in,
    screenshot,
)

pytestmark = pytest.mark.browser


def test_wrong_password_is_refused(web_only: Appliance, new_page: Any) -> None:
    page = log_in(new_page(), web_only.web_url, secret="not-the-password")
    assert page.locator(".flash.error").inner_text() == "Wrong password."
    screenshot(page, "login-wrong-password")
    page.goto(web_only.web_url + "/sync")
    page.wait_for_url(re.compile(r"/login\?next=/sync$"))
    page.fill("#password", PASSWORD)
    page.click("main button[type=submit]")
    page.wait_for_url(re.compile(r"/sync$"))  # back where the technician wanted to go
    assert "log in first" in requests.get(web_only.web_url + "/api/local/meters", timeout=5).text
    bad = requests.get(web_only.web_url + "/api/local/meters", auth=("admin", "nope"), timeout=5)
    assert bad.status_code == 401


def test_empty_dashboard_explains_where_meters_come_from(
    web_only: Appliance, new_page: Any
) -> None:
    page = log_in(new_page(), web_only.web_url)
    page.locator("#empty").wait_for(state="visible")
    screenshot(page, "dashboard-empty")


def _post(page: Any, url: str, with_token: bool, body: str = "{}") -> list[Any]:
    result: list[Any] = page.evaluate(
        """async ([url, withToken, body]) => {
            const headers = {'Content-Type': 'application/json'};
            if (withToken) headers['X-CSRFToken'] = document.querySelector('meta[name=csrf-token]').content;
            const r = await fetch(url, {method: 'POST', headers, body});
            return [r.status, await r.text()];
        }""",
        [url, with_token, body],
    )
    return result


def test_state_changes_without_the_csrf_token_are_refused(
    web_only: Appliance, new_page: Any
) -> None:
    page = log_in(new_page(), web_only.web_url)
    page.goto(web_only.web_url + "/sync")
    for url in (
        "/api/local/sync-trigger",
        "/api/local/meter-sync-trigger",
        "/sync/action",
        "/logout",
    ):
        status, text = _post(page, url, with_token=False, body='{"action": "pause_upload"}')
        assert status == 400 and "CSRF" in text, (url, status, text)
    assert web_only.sql("SELECT upload_paused FROM appliance_state")[0][0] is False

    status, text = _post(page, "/api/local/sync-trigger", True, '{"action": "pause_upload"}')
    assert status == 202, text
    assert web_only.sql("SELECT upload_paused FROM appliance_state")[0][0] is True
    page.reload()
    page.locator("#btn-resume-upload").wait_for(state="visible")
    page.click("#btn-resume-upload")
    page.locator("#btn-pause-upload").wait_for(state="visible")
    assert web_only.sql("SELECT upload_paused FROM appliance_state")[0][0] is False
    screenshot(page, "sync-not-enrolled")

    # a login form posted from elsewhere (no token) does not log anyone in
    fresh = new_page()
    fresh.goto(web_only.web_url + "/health")
    status, text = _post(fresh, "/login", False, "password=" + PASSWORD)
    assert status == 400

    page.click("text=Log out")
    page.wait_for_url(re.compile(r"/login$"))
    assert page.locator(".flash").inner_text() == "Logged out."


def test_changing_the_password_ends_other_sessions(web_only: Appliance, new_page: Any) -> None:
    other = log_in(new_page(), web_only.web_url)
    other.locator("#empty").wait_for(state="visible")
    page = log_in(new_page(width=390, height=844, mobile=True), web_only.web_url)
    page.click("text=Password")
    page.fill("#current", PASSWORD)
    page.fill("#new", "a-new-password-2026")
    page.fill("#repeat", "a-new-password-2026")
    screenshot(page, "password-change-phone", full_page=False)
    page.click("main button[type=submit]")
    page.wait_for_url(re.compile(r"/$"))
    assert "Password changed" in page.locator(".flash").first.inner_text()
    other.reload()
    other.wait_for_url(re.compile(r"/login"))  # the other browser is logged out
    log_in(other, web_only.web_url, secret="a-new-password-2026").wait_for_url(re.compile(r"/$"))
