"""MCP tokens in the operator UI, in a real browser against central under gunicorn: made and
shown once, acting as their user, revoked by their owner (or an admin), usable on a phone."""

from __future__ import annotations

import psycopg
import pytest

from central import mcp_tokens
from tests.ui_browser import (
    PASSWORD,
    Ui,
)

pytestmark = pytest.mark.browser


def test_a_viewer_makes_uses_and_revokes_a_token(ui: Ui) -> None:
    central = ui.central
    central.create_user("viewer@example.com", PASSWORD, "viewer")
    central.create_user("other-viewer@example.com", PASSWORD, "viewer")
    ui.login("viewer@example.com")
    page = ui.go("/account")
    page.click("a:has-text('MCP tokens')")
    page.fill("#name", "Claude on my laptop")
    page.click("button:has-text('Make token')")
    token = page.inner_text("[data-testid=mcp-token]").strip()
    assert token.startswith("mcp_")
    assert "claude mcp add --transport http" in page.inner_text("[data-testid=new-token]")
    with psycopg.connect(central.db_url) as conn:
        owner = mcp_tokens.authenticate(conn, token)
        conn.commit()
    assert owner is not None and owner.email == "viewer@example.com" and owner.role == "viewer"
    # shown once: the list names it by prefix only
    page = ui.go("/account/mcp-tokens")
    assert token not in page.content() and owner.prefix in page.inner_text(
        "[data-testid=mcp-tokens]"
    )
    assert "never" not in page.inner_text("[data-testid=mcp-tokens]")  # used just now

    page.set_viewport_size({"width": 360, "height": 780})
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 360, f"the MCP tokens page scrolls sideways on a phone ({width}px)"
    ui.screenshot("mcp-tokens-phone")

    # another viewer cannot revoke it
    ui.logout()
    ui.login("other-viewer@example.com")
    page = ui.go("/account/mcp-tokens")
    assert owner.prefix not in page.content()
    csrf = page.locator("input[name=csrf_token]").first.get_attribute("value") or ""
    refused = page.request.post(
        central.url(f"/account/mcp-tokens/{owner.token_id}/revoke"),
        form={"csrf_token": csrf},
        max_redirects=0,
    )
    assert refused.status == 404
    ui.logout()

    ui.login("viewer@example.com")
    page = ui.go("/account/mcp-tokens")
    page.click("button:has-text('Revoke')")
    assert "revoked" in page.inner_text("[data-testid=mcp-tokens]")
    with psycopg.connect(central.db_url) as conn:
        assert mcp_tokens.authenticate(conn, token) is None
        actions = [r[0] for r in conn.execute("SELECT action FROM audit_log ORDER BY id")]
    assert actions[-2:] == ["mcp_token.create", "mcp_token.revoke"]
