"""Shared by the appliance sync tests: edge settings pointing at a real central, readings put
on the edge with COPY, and the check every fault test ends with — edge readings = central
readings by natural key (meter, data point, timestamp), no loss, no duplicate."""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import psycopg
import pytest

from appliance.settings import ApplianceSettings
from appliance.sync.meter_config import sync_meters
from tests.central_fixtures import CentralServer, SiteKey
from tests.recent import T0

ROOT = Path(__file__).resolve().parent.parent
POINTS = [("energy_kwh", "analog-input,1", "kWh"), ("power_kw", "analog-input,2", "kW")]


class CentralStandIn(BaseHTTPRequestHandler):
    """A stand-in for central where a test needs an answer central would not give at will:
    it answers in JSON as central does, and logs nothing."""

    def reply_json(
        self, status: int, payload: object, headers: dict[str, str] | None = None
    ) -> None:
        """Read the request's body, then answer ``payload`` with ``headers``."""
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = json.dumps(payload).encode()
        self.send_response(status)
        sent = {
            **(headers or {}),
            "Content-Type": "application/json",
            "Content-Length": str(len(body)),
        }
        for name, value in sent.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def edge_settings(
    edge_db_url: str, redis_url: str, central: CentralServer | str | None, site: SiteKey | None
) -> ApplianceSettings:
    base = central.base_url if isinstance(central, CentralServer) else central
    return ApplianceSettings(
        database_url=edge_db_url,
        redis_url=redis_url,
        central_url=base,
        api_key=site.api_key if site else None,
        upload_retry_backoff_s=0.05,
    )


def settings_env(settings: ApplianceSettings, tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment a real appliance process needs to run with ``settings``."""
    config = tmp_path / "appliance-test.toml"
    config.touch()
    env = {k: v for k, v in os.environ.items() if not k.startswith("METERIT_")}
    env["METERIT_CONFIG"] = str(config)  # a host's /etc/meterit must not leak into tests
    for name in (
        "database_url",
        "redis_url",
        "central_url",
        "api_key",
        "upload_retry_backoff_s",
        "upload_batch_size",
        "upload_batch_max",
        "upload_interval_s",
        "upload_time_budget_s",
        "heartbeat_interval_s",
        "meter_sync_interval_s",
        "buffer_budget_rows",
        "retention_days",
    ):
        value = getattr(settings, name)
        if value is not None:
            env[f"METERIT_{name.upper()}"] = str(value)
    env.update(extra)
    return env


def with_settings(settings: ApplianceSettings, **changes: Any) -> ApplianceSettings:
    return replace(settings, **changes)


def site_with_meters(central: CentralServer, meters: int = 2, name: str = "plant-1") -> SiteKey:
    site = central.create_site(name)
    for i in range(meters):
        central.add_meter(site.site_id, f"meter-{i}", POINTS, address=f"127.0.0.1:{47900 + i}")
    return site


@pytest.fixture
def enrolled(
    central_server: CentralServer, edge_db_url: str, redis_url: str
) -> tuple[CentralServer, SiteKey, ApplianceSettings]:
    """A central site with two meters, and an edge that pulled them."""
    site = site_with_meters(central_server)
    settings = edge_settings(edge_db_url, redis_url, central_server, site)
    assert sync_meters(settings).result == "ok"
    return central_server, site, settings


def edge_points(edge_db_url: str) -> list[tuple[int, int]]:
    """(meter_id, point_id) of every active point on the edge."""
    with psycopg.connect(edge_db_url) as conn:
        return [
            (r[0], r[1])
            for r in conn.execute(
                "SELECT m.id, p.id FROM meters m JOIN meter_points p ON p.meter_id = m.id"
                " WHERE m.active AND p.active ORDER BY m.id, p.id"
            )
        ]


def add_readings(
    edge_db_url: str, n: int, start: datetime = T0, step: timedelta = timedelta(seconds=60)
) -> int:
    """``n`` readings spread over the edge's points with COPY, as a collector would have stored
    them (each point's timestamps unique); returns how many."""
    points = edge_points(edge_db_url)
    assert points, "no meters on the edge: run the meter sync first"
    with psycopg.connect(edge_db_url) as conn:
        last = conn.execute("SELECT max(ts) FROM readings").fetchone()
        if last and last[0] is not None and last[0] >= start:
            start = last[0] + step
        buf = io.StringIO()
        for i in range(n):
            meter_id, point_id = points[i % len(points)]
            ts = start + step * (i // len(points))
            buf.write(f"{meter_id}\t{point_id}\t{ts.isoformat()}\t{1000.0 + i * 0.5}\n")
        with (
            conn.cursor() as cur,
            cur.copy("COPY readings (meter_id, point_id, ts, value) FROM STDIN") as copy,
        ):
            copy.write(buf.getvalue())
    return n


def edge_readings(edge_db_url: str) -> dict[tuple[str, str, datetime], float]:
    with psycopg.connect(edge_db_url) as conn:
        rows = conn.execute(
            "SELECT m.external_id, p.name, r.ts, r.value FROM readings r"
            " JOIN meters m ON m.id = r.meter_id JOIN meter_points p ON p.id = r.point_id"
        ).fetchall()
    out = {(m, p, ts): v for m, p, ts, v in rows}
    assert len(out) == len(rows), "the edge holds the same natural key twice"
    return out


def central_readings(
    central: CentralServer, site_id: int
) -> dict[tuple[str, str, datetime], float]:
    with psycopg.connect(central.db_url) as conn:
        rows = conn.execute(
            "SELECT m.external_id, p.name, r.ts, r.value FROM readings r"
            " JOIN meter_points p ON p.id = r.point_id JOIN meters m ON m.id = p.meter_id"
            " WHERE m.site_id = %s",
            (site_id,),
        ).fetchall()
    out = {(m, p, ts): v for m, p, ts, v in rows}
    assert len(out) == len(rows), "central holds the same natural key twice"
    return out


def unsynced(edge_db_url: str) -> int:
    with psycopg.connect(edge_db_url) as conn:
        row = conn.execute("SELECT count(*) FROM upload_queue").fetchone()
        return int(row[0]) if row else 0


def assert_edge_equals_central(edge_db_url: str, central: CentralServer, site_id: int) -> int:
    """Every edge reading is in central with the same value, nothing else is, all are synced."""
    edge = edge_readings(edge_db_url)
    assert unsynced(edge_db_url) == 0, "readings left unsynced on the edge"
    remote = central_readings(central, site_id)
    missing = edge.keys() - remote.keys()
    extra = remote.keys() - edge.keys()
    assert not missing, (
        f"{len(missing)} edge readings missing centrally, e.g. {sorted(missing)[:3]}"
    )
    assert not extra, f"{len(extra)} central readings not on the edge, e.g. {sorted(extra)[:3]}"
    assert edge == remote
    return len(edge)


def wait_until(predicate: Any, timeout: float, what: str, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class ApplianceProcess:
    """A real ``meterit-appliance`` subprocess in its own process group (as systemd's cgroup),
    so SIGKILL takes it and anything it started together."""

    def __init__(self, args: list[str], env: dict[str, str], log_path: Path) -> None:
        self.log_path = log_path
        with log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "appliance", *args],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def descendants(self) -> list[int]:
        """Every process below ours, whatever process group it put itself in."""
        children: dict[int, list[int]] = {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError, ValueError, IndexError):
                fields = stat.read_text().rsplit(")", 1)[1].split()
                children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
        out: list[int] = []
        todo = [self.process.pid]
        while todo:
            for child in children.get(todo.pop(), []):
                out.append(child)
                todo.append(child)
        return out

    def kill(self) -> None:
        """SIGKILL the process and all below it, as systemd does to a unit's cgroup: nothing
        gets to clean up."""
        victims = self.descendants()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        for pid in victims:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self, timeout: float = 30) -> int:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.process.returncode

    def wait(self, timeout: float) -> int:
        return self.process.wait(timeout=timeout)
