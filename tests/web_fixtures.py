"""Fixtures for the local web UI tests: the real UI under gunicorn, simulated BACnet meters in a
thread of this process (so a test can take one offline), the real collector and worker as
subprocesses, and headless Debian chromium driven by Playwright.

Import the fixtures a test module needs from here (``from tests.web_fixtures import ...``).
"""

from __future__ import annotations

import asyncio
import io
import logging
import math
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
import requests

from appliance import service
from appliance.bacnet.simulator import SimMeterSpec, SimulatorHandle, meter_points, run_simulators
from appliance.settings import ApplianceSettings
from tests.central_fixtures import CentralServer, SiteKey
from tests.ports import free_tcp_port, free_udp_port
from tests.sync_helpers import ApplianceProcess, edge_settings, settings_env, wait_until
from tests.ui_browser import SCREENSHOTS
from web import password

logger = logging.getLogger(__name__)
PASSWORD = "correct-horse-battery-staple"
METER_NAMES = {
    3001: "Main incomer",
    3002: "Chiller plant",
    3003: "Floor 2 distribution",
    3004: "EV chargers",
}
POINTS = 6  # per simulated meter: energy, power, voltage, current, power factor, frequency


class SimulatorThread:
    """Simulated meters served by an asyncio loop in a daemon thread of the test process."""

    def __init__(self, specs: list[SimMeterSpec]) -> None:
        self.specs = specs
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        started: Future[SimulatorHandle] = asyncio.run_coroutine_threadsafe(
            run_simulators(specs), self.loop
        )
        self.handle = started.result(timeout=30)

    def set_offline(self, instance: int, offline: bool) -> None:
        self.loop.call_soon_threadsafe(self.handle.set_offline, instance, offline)

    def set_unknown_properties(self, instance: int, props: tuple[str, ...]) -> None:
        self.loop.call_soon_threadsafe(self.handle.set_unknown_properties, instance, props)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.handle.close)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)


@dataclass
class Appliance:
    """One appliance's processes around one edge database, started on demand."""

    settings: ApplianceSettings
    tmp_path: Path
    env: dict[str, str]
    web_url: str = ""
    processes: dict[str, ApplianceProcess] = field(default_factory=dict)

    def start(self, name: str, *args: str) -> ApplianceProcess:
        proc = ApplianceProcess([name, *args], self.env, self.tmp_path / f"{name}.log")
        self.processes[name] = proc
        return proc

    def start_web(self) -> str:
        port = free_tcp_port()
        self.env["METERIT_WEB_BIND"] = f"127.0.0.1:{port}"
        proc = self.start("web")
        self.web_url = f"http://127.0.0.1:{port}"

        def up() -> bool:
            assert proc.process.poll() is None, f"web UI exited:\n{proc.log()}"
            try:
                return requests.get(self.web_url + "/health", timeout=2).status_code == 200
            except requests.RequestException:
                return False

        wait_until(up, 30, "the web UI to answer /health")
        return self.web_url

    def logs(self) -> str:
        return "\n".join(f"--- {n} ---\n{p.log()[-3000:]}" for n, p in self.processes.items())

    def stop(self) -> None:
        for proc in self.processes.values():
            proc.stop(timeout=15)

    def sql(self, query: str, params: Any = ()) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.settings.database_url, autocommit=True) as conn:
            cur = conn.execute(query, params)
            return cur.fetchall() if cur.description else []


def make_appliance(
    edge_db_url: str,
    redis_url: str,
    tmp_path: Path,
    central: CentralServer | None = None,
    site: SiteKey | None = None,
) -> Appliance:
    settings = edge_settings(edge_db_url, redis_url, central, site)
    hash_file = tmp_path / "web-password.argon2"
    password.set_password(hash_file, PASSWORD)
    env = settings_env(
        settings,
        tmp_path,
        METERIT_WEB_PASSWORD_HASH_FILE=str(hash_file),
        METERIT_WEB_INITIAL_PASSWORD_FILE=str(tmp_path / "no-initial-password"),
        METERIT_WEB_REFRESH_S="1",
        METERIT_WEB_WORKERS="2",
        METERIT_POLL_INTERVAL_S="1",
        METERIT_REQUEST_TIMEOUT_S="0.3",
        METERIT_BACNET_ADDRESS=f"127.0.0.1:{free_udp_port()}",
        METERIT_UPLOAD_INTERVAL_S="3600",  # uploads run at worker start and when asked
        METERIT_METER_SYNC_INTERVAL_S="3600",
        METERIT_HEARTBEAT_INTERVAL_S="3600",
    )
    return Appliance(settings, tmp_path, env)


@pytest.fixture
def web_only(edge_db_url: str, redis_url: str, tmp_path: Path) -> Iterator[Appliance]:
    """The web UI alone on an empty edge database (login, CSRF, error pages)."""
    appliance = make_appliance(edge_db_url, redis_url, tmp_path)
    appliance.start_web()
    yield appliance
    appliance.stop()


@dataclass
class Site:
    """A running appliance enrolled with a real central, polling simulated meters."""

    appliance: Appliance
    central: CentralServer
    key: SiteKey
    sims: SimulatorThread

    def meter_ids(self) -> list[str]:
        return [f"sim-{s.device_instance}" for s in self.sims.specs]


def add_central_meter(central: CentralServer, site_id: int, spec: SimMeterSpec) -> None:
    points = [(p.name, p.object_id, p.unit) for p in meter_points(spec.points)]
    central.add_meter(
        site_id,
        f"sim-{spec.device_instance}",
        points,
        address=spec.address,
        device_instance=spec.device_instance,
        name=METER_NAMES.get(spec.device_instance, ""),
    )


def sim_specs(count: int, first: int = 3001) -> list[SimMeterSpec]:
    return [
        SimMeterSpec(device_instance=first + i, port=free_udp_port(), points=POINTS)
        for i in range(count)
    ]


@pytest.fixture
def site(
    central_server: CentralServer, edge_db_url: str, redis_url: str, tmp_path: Path
) -> Iterator[Site]:
    """Central with a site of three meters (simulated, on this host), and an appliance with
    web UI, collector and worker running; the worker's first meter sync has brought the meters."""
    specs = sim_specs(4)
    sims = SimulatorThread(specs)
    key = central_server.create_site("plant-north")
    for spec in specs[:3]:  # the fourth is added centrally by tests that sync meters
        add_central_meter(central_server, key.site_id, spec)
    appliance = make_appliance(edge_db_url, redis_url, tmp_path, central_server, key)
    try:
        appliance.start("worker")
        # the worker's cron pulls the meters at start, but not always at once: ask as the UI does
        service.meter_sync_now(appliance.settings)
        wait_until(
            lambda: appliance.sql("SELECT count(*) FROM meters")[0][0] == 3,
            90,
            "the worker's first meter sync",
        )
        appliance.start("collector")
        appliance.start_web()
        yield Site(appliance, central_server, key, sims)
    finally:
        appliance.stop()
        sims.close()
        logger.warning("appliance logs (shown when the test fails):\n%s", appliance.logs())


def add_past_readings(
    edge_db_url: str, per_point: int, days_back: float = 2.0, synced: bool = False
) -> int:
    """History as the collector would have left it: ``per_point`` readings a minute apart for
    each active point from ``days_back`` days ago, following a daily load curve (COPY, as the
    benchmark does); unsynced (a backlog) unless ``synced``."""
    start = datetime.now(UTC) - timedelta(days=days_back)
    with psycopg.connect(edge_db_url) as conn:
        points = conn.execute(
            "SELECT p.meter_id, p.id FROM meter_points p JOIN meters m ON m.id = p.meter_id"
            " WHERE p.active AND m.active"
        ).fetchall()
        buf = io.StringIO()
        for meter_id, point_id in points:
            base = 40.0 + 7 * (point_id % 5)
            for i in range(per_point):
                ts = start + timedelta(minutes=i)
                hour = ts.hour + ts.minute / 60
                load = base * (1 + 0.35 * math.sin((hour - 9) / 24 * math.tau))
                load += (i * 7919) % 13 / 4  # a little noise, the same on every run
                buf.write(f"{meter_id}\t{point_id}\t{ts.isoformat()}\t{load:.3f}\n")
        with (
            conn.cursor() as cur,
            cur.copy("COPY readings (meter_id, point_id, ts, value) FROM STDIN") as copy,
        ):
            copy.write(buf.getvalue())
        if synced:  # out of the upload queue in the same transaction, before a worker sees them
            conn.execute(
                "DELETE FROM upload_queue q USING readings r WHERE q.id = r.id"
                " AND r.point_id = ANY(%s) AND r.ts >= %s AND r.ts < %s",
                ([p for _, p in points], start, start + timedelta(minutes=per_point)),
            )
    return len(points) * per_point


# -- the browser ---------------------------------------------------------------------------------


@pytest.fixture
def new_page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Callable[..., Any]]:
    """Factory of fresh browser pages (own cookies); a laptop viewport unless told otherwise."""
    contexts: list[Any] = []

    def make(width: int = 1280, height: int = 900, mobile: bool = False) -> Any:
        context = browser.new_context(
            viewport={"width": width, "height": height},
            device_scale_factor=2 if mobile else 1,
            is_mobile=mobile,
            has_touch=mobile,
            timezone_id="Europe/Berlin",
            locale="en-GB",
        )
        context.set_default_timeout(20_000)
        contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda err: logger.warning("page error: %s", err))
        return page

    yield make
    for context in contexts:
        context.close()


def screenshot(page: Any, name: str, full_page: bool = True) -> Path:
    """Keep what the browser showed as a test artifact."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path


def log_in(page: Any, base_url: str, secret: str = PASSWORD) -> Any:
    page.goto(base_url + "/")
    page.fill("#password", secret)
    page.click("main button[type=submit]")
    return page
