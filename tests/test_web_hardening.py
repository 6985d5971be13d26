"""The local UI under hostile input (issue #16): no open redirect after login, JSON answers
(never an HTML 500) from its JSON API (items 2, 9), through real gunicorn."""

from __future__ import annotations

import re

import requests

from tests.web_fixtures import (
    PASSWORD,
    Appliance,
)


def log_in(base: str, next_url: str) -> requests.Response:
    session = requests.Session()
    page = session.get(base + "/login", timeout=10).text
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match
    return session.post(
        base + "/login",
        data={"csrf_token": match.group(1), "password": PASSWORD, "next": next_url},
        allow_redirects=False,
        timeout=30,
    )


def test_login_never_redirects_off_the_appliance(web_only: Appliance) -> None:
    # few attempts: the login form allows 10 a minute per address
    for target in ("/\t/evil.example/", "/\t\t//evil.example/", "/sync\r\nSet-Cookie: x=1"):
        answer = log_in(web_only.web_url, target)
        assert answer.status_code == 302, (target, answer.status_code, answer.text[:300])
        assert answer.headers["Location"] == "/", target
    assert log_in(web_only.web_url, "/sync?x=1").headers["Location"] == "/sync?x=1"


def test_json_api_answers_json_for_absurd_spans(web_only: Appliance) -> None:
    auth = ("admin", PASSWORD)
    for hours in ("1e9", "-1", "nan", "inf", "x"):
        answer = requests.get(
            web_only.web_url + f"/api/local/readings?meter=m1&hours={hours}",
            auth=auth,
            timeout=10,
        )
        assert answer.status_code == 400, (hours, answer.status_code, answer.text[:200])
        assert "hours" in answer.json()["error"]
