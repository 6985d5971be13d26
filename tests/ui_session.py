"""An operator-UI session over plain HTTP (requests), for tests that need the server's exact
answers (status codes, headers, downloads) rather than what a browser shows of them."""

from __future__ import annotations

import re

import requests

from tests.central_fixtures import CentralServer

CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_token(session: requests.Session, url: str) -> str:
    """The CSRF token of the form on the page at ``url``."""
    page = session.get(url, timeout=10)
    match = CSRF_RE.search(page.text)
    assert match, f"no CSRF token on {url} ({page.status_code})"
    return match.group(1)


def sign_in(
    server: CentralServer, email: str, password: str, next_url: str = ""
) -> requests.Response:
    """POST the sign-in form in a new session; the answer is not followed (``.session`` on it
    is not set: use :func:`signed_in` for a session)."""
    session = requests.Session()
    token = csrf_token(session, server.url("/login"))
    return session.post(
        server.url("/login"),
        data={"csrf_token": token, "email": email, "password": password, "next": next_url},
        allow_redirects=False,
        timeout=30,
    )


def signed_in(server: CentralServer, email: str, password: str) -> requests.Session:
    session = requests.Session()
    token = csrf_token(session, server.url("/login"))
    answer = session.post(
        server.url("/login"),
        data={"csrf_token": token, "email": email, "password": password},
        allow_redirects=False,
        timeout=30,
    )
    assert answer.status_code == 302, answer.text[:500]
    return session
