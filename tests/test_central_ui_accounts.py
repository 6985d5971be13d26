"""The accounts page in a real browser at phone width: an admin lists the tenant's users,
adds one, changes a role, resets a password and deactivates, each audited (issue #16)."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
import requests
from playwright.sync_api import Browser, expect

from tests.central_fixtures import (
    CentralServer,
)
from tests.ui_browser import (
    PASSWORD,
    Ui,
)
from tests.ui_session import (
    sign_in,
    signed_in,
)

pytestmark = pytest.mark.browser


@pytest.fixture
def phone(browser: Browser, central_server: CentralServer) -> Iterator[Ui]:
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    page = context.new_page()
    page.set_default_timeout(15000)
    page.on("dialog", lambda dialog: dialog.accept())
    try:
        yield Ui(central_server, page)
    finally:
        context.close()


def test_admin_manages_the_tenants_users_on_a_phone(phone: Ui) -> None:
    central = phone.central
    central.create_user("admin@example.com", PASSWORD, "admin")
    central.create_user("stranger@example.com", PASSWORD, "admin", tenant="other-tenant")
    phone.login("admin@example.com")
    phone.go("/accounts")
    table = phone.page.locator("#accounts")
    expect(table).to_contain_text("admin@example.com")
    expect(table).not_to_contain_text("stranger@example.com")  # another tenant's user

    phone.page.fill("#email", "new@example.com")
    phone.page.select_option("#role", "operator")
    phone.page.fill("#password", "first-password-1")
    phone.page.click("#new-account button[type=submit]")
    row = phone.page.locator("tr[data-email='new@example.com']")
    expect(row).to_contain_text("active")
    expect(row.locator("select")).to_have_value("operator")
    assert sign_in(central, "new@example.com", "first-password-1").status_code == 302
    width = phone.page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the page is {width} px wide on a 390 px phone"
    phone.screenshot("ui-accounts-phone")

    row.locator("select").select_option("viewer")
    row.locator("button:has-text('Change role')").click()
    expect(phone.page.locator("tr[data-email='new@example.com'] select")).to_have_value("viewer")

    user_session = signed_in(central, "new@example.com", "first-password-1")
    phone.page.locator("tr[data-email='new@example.com'] button:has-text('Reset password')").click()
    new_password = phone.page.locator("#new-password").inner_text()
    assert len(new_password) >= 12
    # the reset signs the user out everywhere; the old password no longer works, the new one does
    after = user_session.get(central.url("/"), allow_redirects=False)
    assert after.status_code == 302 and "/login" in after.headers["Location"]
    assert sign_in(central, "new@example.com", "first-password-1").status_code == 401
    user_session = signed_in(central, "new@example.com", new_password)

    phone.page.locator("tr[data-email='new@example.com'] button:has-text('Deactivate')").click()
    expect(phone.page.locator("tr[data-email='new@example.com']")).to_contain_text("deactivated")
    assert user_session.get(central.url("/"), allow_redirects=False).status_code == 302
    assert sign_in(central, "new@example.com", new_password).status_code == 401
    token = requests.post(
        central.url("/api/v1/auth/token"), auth=("new@example.com", new_password), timeout=10
    )
    assert token.status_code == 401

    with psycopg.connect(central.db_url) as conn:
        actions = [
            r[0]
            for r in conn.execute(
                """SELECT action FROM audit_log WHERE actor = 'user:admin@example.com'
                   ORDER BY id"""
            )
        ]
        audited = conn.execute("SELECT details::text FROM audit_log").fetchall()
    assert actions == ["user.create", "user.role_change", "user.password_reset", "user.deactivate"]
    assert not any(new_password in r[0] or "first-password-1" in r[0] for r in audited)


def test_only_admins_see_the_accounts_page_and_nobody_changes_themselves(
    central_server: CentralServer,
) -> None:
    central_server.create_user("ops@example.com", PASSWORD, "operator")
    admin_id = central_server.create_user("admin@example.com", PASSWORD, "admin")
    operator = signed_in(central_server, "ops@example.com", PASSWORD)
    assert operator.get(central_server.url("/accounts")).status_code == 403
    admin = signed_in(central_server, "admin@example.com", PASSWORD)
    page = admin.get(central_server.url("/accounts"))
    assert page.status_code == 200
    token = page.text.split('name="csrf_token" value="')[1].split('"')[0]
    own = admin.post(
        central_server.url(f"/accounts/{admin_id}/active"),
        data={"csrf_token": token, "active": "false"},
    )
    assert own.status_code == 403
    with psycopg.connect(central_server.db_url) as conn:
        assert conn.execute("SELECT active FROM users WHERE id = %s", (admin_id,)).fetchone() == (
            True,
        )
