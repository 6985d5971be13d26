"""Both web UIs send the security headers on every answer, and central's /metrics is opt-in
(issue #16, item 13), through real gunicorn."""

from __future__ import annotations

from typing import Any

import requests

from common.http_headers import HEADERS
from tests.central_fixtures import (
    CentralServer,
)
from tests.web_fixtures import (
    Appliance,
)


def assert_secure(answer: requests.Response) -> None:
    for name, value in HEADERS.items():
        assert answer.headers.get(name) == value, (answer.url, name, answer.headers)
    if answer.status_code not in (429, 503):
        assert "Retry-After" not in answer.headers, answer.url


def test_central_pages_and_api_answers_carry_the_security_headers(
    central_server: CentralServer,
) -> None:
    for path in ("/login", "/api/v1/sites", "/api/v1/sync/auth", "/health", "/nowhere"):
        assert_secure(requests.get(central_server.url(path), timeout=10))
    assert_secure(requests.post(central_server.url("/api/v1/sync/auth"), timeout=10))


def test_local_ui_pages_and_api_answers_carry_the_security_headers(web_only: Appliance) -> None:
    for path in ("/login", "/", "/api/local/meters", "/health"):
        answer = requests.get(web_only.web_url + path, timeout=10, allow_redirects=False)
        assert_secure(answer)


def test_metrics_are_refused_unless_the_address_or_token_is_allowed(
    make_central_server: Any,
) -> None:
    closed: CentralServer = make_central_server()
    refused = requests.get(closed.url("/metrics"), timeout=10)
    assert refused.status_code == 403
    assert "METERIT_METRICS_ALLOW_FROM" in refused.json()["error"]

    by_address: CentralServer = make_central_server(METERIT_METRICS_ALLOW_FROM="10.0.0.0/8, ::1")
    assert requests.get(by_address.url("/metrics"), timeout=10).status_code == 403
    by_loopback: CentralServer = make_central_server(METERIT_METRICS_ALLOW_FROM="127.0.0.1")
    assert "meterit_" in requests.get(by_loopback.url("/metrics"), timeout=10).text

    by_token: CentralServer = make_central_server(METERIT_METRICS_TOKEN="s3cret-metrics-token")
    missing = requests.get(by_token.url("/metrics"), timeout=10)
    assert missing.status_code == 401 and "METERIT_METRICS_TOKEN" in missing.json()["error"]
    wrong = {"Authorization": "Bearer wrong"}
    assert requests.get(by_token.url("/metrics"), headers=wrong, timeout=10).status_code == 401
    right = {"Authorization": "Bearer s3cret-metrics-token"}
    opened = requests.get(by_token.url("/metrics"), headers=right, timeout=10)
    assert opened.status_code == 200 and "meterit_" in opened.text
