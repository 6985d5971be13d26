"""Shared by the operator-UI browser tests: Debian's chromium driven by Playwright, signed in
to a real central server (gunicorn), plus the appliance's side of the sync API.

Each test keeps a screenshot in ``artifacts/screenshots/`` (gitignored) to look at.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from playwright.sync_api import Browser, Page, sync_playwright

from common.wire import SYNC_CONFIG, SYNC_HEARTBEAT, SYNC_READINGS
from tests.central_fixtures import CentralServer

ROOT = Path(__file__).resolve().parent.parent
SCREENSHOTS = ROOT / "artifacts" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PASSWORD = "correct horse battery"
POINTS = [("energy_kwh", "analog-input,1", "kWh"), ("power_kw", "analog-input,2", "kW")]


def launch_browser() -> Iterator[Browser]:
    """Headless Debian chromium (the ``browser`` fixture, and ``bench/dashboard.py``)."""
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One chromium per test module (Playwright's sync API allows one instance at a time);
    registered for every module by tests/conftest.py, as ``ui`` is."""
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)")
    yield from launch_browser()


@dataclass
class Ui:
    """A browser tab on the central server, for one signed-in user at a time."""

    central: CentralServer
    page: Page

    def go(self, path: str) -> Page:
        self.page.goto(self.central.url(path))
        return self.page

    def login(self, email: str, password: str = PASSWORD) -> None:
        self.go("/login")
        self.page.fill("#email", email)
        self.page.fill("#password", password)
        self.page.click("button[type=submit]")
        self.page.wait_for_selector("header.topbar")

    def logout(self) -> None:
        self.page.click("text=Sign out")
        self.page.wait_for_selector("#email")

    def screenshot(self, name: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path


def open_ui(browser: Browser, central: CentralServer) -> Iterator[Ui]:
    """A fresh browser context (no cookies) on ``central``; accepts confirm() dialogs."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15000)
    page.on("dialog", lambda dialog: dialog.accept())
    try:
        yield Ui(central, page)
    finally:
        context.close()


# -- the appliance's side, through the real sync API ---------------------------------------------


@pytest.fixture
def ui(browser: Browser, central_server: CentralServer) -> Iterator[Ui]:
    """A signed-out page on the ``central_server`` fixture's operator UI."""
    yield from open_ui(browser, central_server)


def send_readings(central: CentralServer, api_key: str, items: list[dict[str, Any]]) -> Any:
    body = gzip.compress(json.dumps({"readings": items}).encode())
    response = requests.post(
        central.url(SYNC_READINGS),
        data=body,
        headers={
            "X-API-Key": api_key,
            "Idempotency-Key": str(uuid.uuid4()),
            "Content-Type": "application/json",
            "Content-Encoding": "gzip",
        },
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return response.json()


def meter_readings(
    meter: str, end: datetime, count: int = 11, step: timedelta = timedelta(minutes=5)
) -> list[dict[str, Any]]:
    """An energy counter rising 10 kWh per step and a steady 120 kW, ending at ``end``."""
    items = []
    for i in range(count):
        ts = (end - step * (count - 1 - i)).astimezone(UTC).isoformat().replace("+00:00", "Z")
        items.append(
            {
                "meter": meter,
                "point": "energy_kwh",
                "ts": ts,
                "value": 1000.0 + 10 * i,
                "unit": "kWh",
            }
        )
        items.append({"meter": meter, "point": "power_kw", "ts": ts, "value": 120.0, "unit": "kW"})
    return items


def send_heartbeat(
    central: CentralServer, api_key: str, *, backlog: int = 0, unreachable: tuple[str, ...] = ()
) -> Any:
    meters = [
        {"external_id": m, "state": "unreachable", "since": None, "last_error": "timeout"}
        for m in unreachable
    ]
    response = requests.post(
        central.url(SYNC_HEARTBEAT),
        json={
            "sent_at": datetime.now(UTC).isoformat(),
            "versions": {"meterit": "0.1.0"},
            "backlog": backlog,
            "oldest_unsynced_age_s": 42.0 if backlog else None,
            "dropped_readings": 0,
            "collection_paused": False,
            "upload_paused": False,
            "meters": meters,
        },
        headers={"X-API-Key": api_key},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return response.json()


def sync_config(central: CentralServer, api_key: str, etag: str | None = None) -> requests.Response:
    headers = {"X-API-Key": api_key}
    if etag:
        headers["If-None-Match"] = etag
    return requests.get(central.url(SYNC_CONFIG), headers=headers, timeout=10)


def run_rollup(central: CentralServer) -> None:
    """The rollup job as the central worker runs it (``meterit-central rollup``), settled at once."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "central",
            "rollup",
            "--settle-minutes",
            "0",
            "--database-url",
            central.db_url,
        ],
        cwd=ROOT,
        check=True,
        capture_output=True,
        timeout=60,
    )
