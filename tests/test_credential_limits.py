"""Every password, key and token check is limited per account and per client address, answers
429 with Retry-After and writes one journal line; an unknown e-mail costs the same argon2 check
as a known one; signing out ends the session on the server (issue #16, items 1, 3, 5).
Real gunicorn, PostgreSQL, Redis and MCP server throughout."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import psycopg
import pytest
import requests

from central import users
from common.attempts import PER_ACCOUNT, PER_ADDRESS
from common.wire import SYNC_AUTH
from tests.central_fixtures import (
    CentralServer,
)
from tests.mcp_helpers import (
    TOKEN,
    HttpMcpServer,
)
from tests.sync_helpers import (
    edge_settings,
    settings_env,
)
from tests.ui_session import (
    csrf_token,
    sign_in,
    signed_in,
)
from tests.web_fixtures import (
    PASSWORD as WEB_PASSWORD,
)
from tests.web_fixtures import (
    Appliance,
)

PASSWORD = "correct horse battery"
ACCOUNT_BUDGET = int(PER_ACCOUNT.split()[0])
ADDRESS_BUDGET = int(PER_ADDRESS.split()[0])


def assert_refused(answer: requests.Response) -> None:
    assert answer.status_code == 429, (answer.status_code, answer.text[:300])
    assert int(answer.headers["Retry-After"]) > 0


def test_wrong_passwords_on_the_api_are_limited_per_account(
    central_server: CentralServer,
) -> None:
    central_server.create_user("ops@example.com", PASSWORD, "admin")
    central_server.create_user("other@example.com", PASSWORD, "admin")
    token_url = central_server.url("/api/v1/auth/token")
    # the token endpoint and Basic on any endpoint share the account's budget
    for i in range(ACCOUNT_BUDGET):
        url = token_url if i % 2 else central_server.url("/api/v1/sites")
        method = requests.post if i % 2 else requests.get
        answer = method(url, auth=("ops@example.com", f"guess-{i}"), timeout=10)
        assert answer.status_code == 401, (i, answer.text)
    refused = requests.post(token_url, auth=("ops@example.com", PASSWORD), timeout=10)
    assert_refused(refused)  # even the right password, until the window ends
    assert_refused(
        requests.get(central_server.url("/api/v1/sites"), auth=("OPS@example.com", PASSWORD))
    )
    assert requests.post(token_url, auth=("other@example.com", PASSWORD)).status_code == 200
    journal = [line for line in central_server.log().splitlines() if "failed attempts" in line]
    assert len(journal) == 1 and "ops@example.com" in journal[0], journal
    assert PASSWORD not in central_server.log()


def test_many_accounts_from_one_address_use_up_the_address_budget(
    central_server: CentralServer,
) -> None:
    central_server.create_user("ops@example.com", PASSWORD, "admin")
    token_url = central_server.url("/api/v1/auth/token")
    for i in range(ADDRESS_BUDGET):
        answer = requests.post(token_url, auth=(f"user{i}@example.com", "guess"), timeout=10)
        assert answer.status_code == 401, (i, answer.text)
    assert_refused(requests.post(token_url, auth=("ops@example.com", PASSWORD), timeout=10))
    bearer = {"Authorization": "Bearer mop_not-a-token"}
    assert_refused(requests.get(central_server.url("/api/v1/sites"), headers=bearer, timeout=10))


def test_ui_sign_in_is_limited_and_says_when_to_retry(central_server: CentralServer) -> None:
    central_server.create_user("ops@example.com", PASSWORD, "operator")
    for _ in range(ACCOUNT_BUDGET):
        assert sign_in(central_server, "ops@example.com", "wrong").status_code == 401
    refused = sign_in(central_server, "ops@example.com", PASSWORD)
    assert_refused(refused)
    assert "Too many failed sign-ins" in refused.text


def test_wrong_api_keys_are_limited_per_address(make_central_server: Any) -> None:
    server: CentralServer = make_central_server(METERIT_RATE_LIMIT="1000/minute")
    site = server.create_site("plant-1")
    for i in range(ADDRESS_BUDGET):
        wrong = {"X-API-Key": f"mtk_{i:08x}_wrong"}
        answer = requests.post(server.url(SYNC_AUTH), headers=wrong, timeout=10)
        assert answer.status_code == 401, (i, answer.text)
    assert_refused(requests.post(server.url(SYNC_AUTH), headers={"X-API-Key": site.api_key}))


def test_a_key_prefix_guessed_too_often_refuses_its_right_key_too(make_central_server: Any) -> None:
    """A valid key's lockout is read in the request-count round trip (central.sync_budget),
    not before the lookup: the answer must still be the lockout's, with nothing to tell a
    right guess from a wrong one, and only for that prefix."""
    server: CentralServer = make_central_server(METERIT_RATE_LIMIT="1000/minute")
    site = server.create_site("plant-1")
    other = server.create_site("plant-2")
    prefix = "_".join(site.api_key.split("_")[:2])
    for i in range(ACCOUNT_BUDGET):
        guess = {"X-API-Key": f"{prefix}_guess{i}"}
        answer = requests.post(server.url(SYNC_AUTH), headers=guess, timeout=10)
        assert answer.status_code == 401, (i, answer.text)
    right = requests.post(server.url(SYNC_AUTH), headers={"X-API-Key": site.api_key}, timeout=10)
    assert_refused(right)
    assert "too many failed attempts for this account" in right.json()["error"]
    other_key = {"X-API-Key": other.api_key}
    assert requests.post(server.url(SYNC_AUTH), headers=other_key, timeout=10).status_code == 200


def test_the_metrics_token_is_limited(make_central_server: Any) -> None:
    server: CentralServer = make_central_server(METERIT_METRICS_TOKEN="s3cret-metrics-token")
    for _ in range(ADDRESS_BUDGET):
        wrong = {"Authorization": "Bearer wrong"}
        assert requests.get(server.url("/metrics"), headers=wrong, timeout=10).status_code == 401
    right = {"Authorization": "Bearer s3cret-metrics-token"}
    assert_refused(requests.get(server.url("/metrics"), headers=right, timeout=10))


def test_local_ui_basic_auth_and_login_are_limited(web_only: Appliance) -> None:
    api = web_only.web_url + "/api/local/meters"
    for _ in range(ACCOUNT_BUDGET):
        answer = requests.get(api, auth=("admin", "wrong"), timeout=10)
        assert answer.status_code == 401
    refused = requests.get(api, auth=("admin", WEB_PASSWORD), timeout=10)
    assert_refused(refused)
    assert "too many" in refused.json()["error"]
    session = requests.Session()
    page = session.get(web_only.web_url + "/login", timeout=10).text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token
    login = session.post(
        web_only.web_url + "/login",
        data={"csrf_token": token.group(1), "password": WEB_PASSWORD},
        allow_redirects=False,
        timeout=10,
    )
    assert_refused(login)
    assert "1 failed attempts" not in web_only.logs()
    assert len(re.findall("failed attempts for account:admin", web_only.logs())) == 1


def test_mcp_tokens_are_limited_per_address(
    edge_db_url: str, redis_url: str, tmp_path: Path
) -> None:
    env = settings_env(edge_settings(edge_db_url, redis_url, None, None), tmp_path)
    server = HttpMcpServer(env, tmp_path / "mcp.log")
    try:
        headers = {"Accept": "application/json, text/event-stream"}
        body = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
        for _ in range(ADDRESS_BUDGET):
            wrong = headers | {"Authorization": "Bearer not-the-token-at-all"}
            assert (
                requests.post(server.url, json=body, headers=wrong, timeout=10).status_code == 401
            )
        right = headers | {"Authorization": f"Bearer {TOKEN}"}
        refused = requests.post(server.url, json=body, headers=right, timeout=10)
        assert_refused(refused)
        assert "too many" in refused.json()["error"]["message"]
    finally:
        server.stop()


def test_an_unknown_e_mail_costs_the_same_argon2_check_as_a_known_one(
    central_server: CentralServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A spy, not a stopwatch: timings are not asserted in tests (the machine is shared). The
    # argon2 verification is the whole cost of a check, so "the same work" is "one verification
    # with the same parameters", whether the e-mail exists or not.
    central_server.create_user("ops@example.com", PASSWORD, "viewer")
    verified: list[str] = []
    real_verify = users.verify_password

    def spy(password_hash: str, password: str) -> bool:
        verified.append(password_hash.split("$")[3])  # m=…,t=…,p=…: the cost parameters
        return real_verify(password_hash, password)

    monkeypatch.setattr(users, "verify_password", spy)
    with psycopg.connect(central_server.db_url) as conn:
        assert users.check_password(conn, "ops@example.com", "wrong") is None
        assert users.check_password(conn, "nobody@example.com", "wrong") is None
        assert users.check_password(conn, "ops@example.com", PASSWORD) is not None
    assert len(verified) == 3 and len(set(verified)) == 1, verified


def test_central_cookie_is_samesite_and_secure_when_configured(make_central_server: Any) -> None:
    plain: CentralServer = make_central_server()
    plain.create_user("ops@example.com", PASSWORD, "viewer")
    cookie = sign_in(plain, "ops@example.com", PASSWORD).headers["Set-Cookie"]
    assert "SameSite=Lax" in cookie and "HttpOnly" in cookie and "Secure" not in cookie
    secure: CentralServer = make_central_server(METERIT_SESSION_COOKIE_SECURE="true")
    # the sign-in form's session already carries the cookie (its CSRF token); a client that
    # honours Secure, as requests does, never sends it back over plain HTTP
    cookie = requests.get(secure.url("/login"), timeout=10).headers["Set-Cookie"]
    assert "SameSite=Lax" in cookie and "; Secure" in cookie


def test_a_cookie_copied_before_sign_out_stops_working_on_central(
    central_server: CentralServer,
) -> None:
    central_server.create_user("ops@example.com", PASSWORD, "viewer")
    session = signed_in(central_server, "ops@example.com", PASSWORD)
    copied = dict(session.cookies)
    assert session.get(central_server.url("/account"), allow_redirects=False).status_code == 200
    out = session.post(
        central_server.url("/logout"),
        data={"csrf_token": csrf_token(session, central_server.url("/account"))},
        allow_redirects=False,
    )
    assert out.status_code == 302
    thief = requests.get(central_server.url("/account"), cookies=copied, allow_redirects=False)
    assert thief.status_code == 302 and "/login" in thief.headers["Location"]


def test_a_cookie_copied_before_logout_stops_working_on_the_local_ui(
    web_only: Appliance,
) -> None:
    session = requests.Session()
    page = session.get(web_only.web_url + "/login", timeout=10).text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token
    session.post(
        web_only.web_url + "/login",
        data={"csrf_token": token.group(1), "password": WEB_PASSWORD},
        timeout=10,
    )
    copied = dict(session.cookies)
    assert session.get(web_only.web_url + "/api/local/meters", timeout=10).status_code == 200
    page = session.get(web_only.web_url + "/sync", timeout=10).text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page) or re.search(
        r'name="csrf-token" content="([^"]+)"', page
    )
    assert token
    out = session.post(
        web_only.web_url + "/logout",
        data={"csrf_token": token.group(1)},
        allow_redirects=False,
        timeout=10,
    )
    assert out.status_code == 302
    thief = requests.get(web_only.web_url + "/api/local/meters", cookies=copied, timeout=10)
    assert thief.status_code == 401
