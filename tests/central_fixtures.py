"""pytest plugin: a REAL central server (gunicorn subprocess) for tests of both sides.

Registered in ``tests/conftest.py`` (``pytest_plugins``). Usage::

    def test_upload(central_server):
        site = central_server.create_site("plant-1")          # tenant made on first use
        central_server.add_meter(site.site_id, "main-incomer", [("energy_kwh", "analog-input,1", "kWh")])
        requests.post(central_server.url("/api/v1/sync/readings"),
                      headers={"X-API-Key": site.api_key, "Idempotency-Key": "b1"}, ...)

``central_server`` runs on a fresh migrated database (``central_db_url``) and a clean Redis
(``redis_url``), one gunicorn worker, a free port. For other settings (a small rate limit,
a short key overlap …) use the factory: ``make_central_server(METERIT_RATE_LIMIT="3/minute")``;
keyword names are environment variables. Helpers go through the real code (``central.tenants``,
``central.sites``, ``central.keys``, ``central.users``, ``central.meters``) on the server's database, so what they create is what the CLI would create.
``central_env(db_url, redis_url, tmp_path, **extra)`` is the environment of a central command;
``run_central_worker(env)`` runs ``central worker`` for a ``with`` block (``wait_for`` polls).
This interface is shared with the appliance tests: extend it, do not change it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
import requests

from central import keys, meters, sites, tenants, users
from tests.ports import free_tcp_port

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class SiteKey:
    site_id: int
    tenant_id: int
    api_key: str
    key_prefix: str


@dataclass
class CentralServer:
    base_url: str
    db_url: str
    redis_url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    _tenants: dict[str, int] = field(default_factory=dict)

    # -- HTTP --------------------------------------------------------------------------------
    def url(self, path: str) -> str:
        return self.base_url + path

    def log(self) -> str:
        """What gunicorn and the app wrote so far (for assertion messages)."""
        return self.log_path.read_text(errors="replace")

    # -- setup through the real code ------------------------------------------------------------
    def _tx(self) -> Any:
        return _Tx(self.db_url)

    def create_tenant(self, name: str = "test-tenant") -> int:
        if name not in self._tenants:
            with self._tx() as conn:
                self._tenants[name] = tenants.create_tenant(conn, name, "cli")
        return self._tenants[name]

    def create_site(self, name: str, tenant: str = "test-tenant") -> SiteKey:
        """A site and its first API key (plaintext, as ``site create`` prints it)."""
        tenant_id = self.create_tenant(tenant)
        with self._tx() as conn:
            created = sites.create_site(conn, tenant_id, name, "cli")
        return SiteKey(created.site_id, tenant_id, created.key.plaintext, created.key.prefix)

    def add_meter(
        self,
        site_id: int,
        external_id: str,
        points: list[tuple[str, str, str]],
        *,
        address: str | None = "127.0.0.1:47808",
        device_instance: int | None = None,
        name: str = "",
        cov: bool = False,
    ) -> int:
        """A meter with data points given as (name, "object-type,instance", unit); the address
        is only polled when an appliance's collector runs against it."""
        body = {
            "external_id": external_id,
            "name": name,
            "address": address,
            "device_instance": device_instance,
            "points": [{"name": n, "object": o, "unit": u} for n, o, u in points],
            "cov": cov,
        }
        with self._tx() as conn:
            tenant_id = tenants.site_tenant(conn, site_id)
            return meters.create_meter(conn, site_id, tenant_id, meters.parse_meter(body), "cli")

    def add_meters(self, site_id: int, document: list[dict[str, Any]]) -> None:
        """Every meter of a meters document (``meters_document`` of the BACnet simulator), so
        the site's configuration names the simulated devices."""
        for meter in document:
            self.add_meter(
                site_id,
                meter["external_id"],
                [(p["name"], p["object"], p["unit"]) for p in meter["points"]],
                address=meter["address"],
                device_instance=meter["device_instance"],
            )

    def rotate_key(self, site_id: int, overlap: timedelta) -> str:
        with self._tx() as conn:
            return keys.rotate_key(conn, site_id, overlap, "cli").plaintext

    def revoke_keys(self, site_id: int, prefix: str | None = None) -> list[str]:
        with self._tx() as conn:
            return keys.revoke_keys(conn, site_id, prefix, "cli")

    def create_user(self, email: str, password: str, role: str, tenant: str = "test-tenant") -> int:
        tenant_id = self.create_tenant(tenant)
        with self._tx() as conn:
            return users.create_user(
                conn, tenant_id, email=email, password=password, role=role, actor="cli"
            )

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class _Tx:
    """One committed transaction on the server's database."""

    def __init__(self, url: str) -> None:
        self.conn = psycopg.connect(url)

    def __enter__(self) -> psycopg.Connection[Any]:
        return self.conn

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        if exc_type is None:
            self.conn.commit()
        else:
            self.conn.rollback()
        self.conn.close()


def start_central_server(
    db_url: str,
    redis_url: str,
    log_dir: Path,
    env: dict[str, str] | None = None,
    tls: tuple[Path, Path] | None = None,
) -> CentralServer:
    """Start ``meterit-central serve`` and wait until it answers HTTP (HTTPS with ``tls``, a
    (certificate, key) pair gunicorn serves itself)."""
    port = free_tcp_port()
    empty_config = log_dir / "central-test.toml"
    empty_config.touch()
    environ = {k: v for k, v in os.environ.items() if not k.startswith("METERIT_")}
    environ.update(
        {
            "METERIT_DATABASE_URL": db_url,
            "METERIT_REDIS_URL": redis_url,
            "METERIT_BIND": f"127.0.0.1:{port}",
            "METERIT_GUNICORN_WORKERS": "1",
            # an empty config file: a host's /etc/meterit/central.toml must not leak into tests
            "METERIT_CONFIG": str(empty_config),
        }
    )
    environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
    environ.update(env or {})
    if tls:
        environ["GUNICORN_CMD_ARGS"] = f"--certfile {tls[0]} --keyfile {tls[1]}"
    log_path = log_dir / f"central-{port}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "central", "serve"],
            cwd=ROOT,
            env=environ,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    scheme = "https" if tls else "http"
    server = CentralServer(f"{scheme}://127.0.0.1:{port}", db_url, redis_url, process, log_path)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"central server exited with {process.returncode}:\n{server.log()}")
        try:
            requests.get(server.url("/health"), timeout=5, verify=str(tls[0]) if tls else True)
            return server
        except requests.RequestException:
            time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"central server did not answer within 30 s:\n{server.log()}")


@pytest.fixture
def make_central_server(
    central_db_url: str, redis_url: str, tmp_path: Path
) -> Iterator[Callable[..., CentralServer]]:
    """Factory: ``make_central_server(METERIT_RATE_LIMIT="3/minute", db_url=...)``."""
    started: list[CentralServer] = []

    def make(db_url: str | None = None, **env: str) -> CentralServer:
        server = start_central_server(db_url or central_db_url, redis_url, tmp_path, env)
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


@pytest.fixture
def central_server(make_central_server: Callable[..., CentralServer]) -> CentralServer:
    """A real central server (gunicorn) on a fresh database; see the module docstring."""
    return make_central_server()


def central_env(db_url: str, redis_url: str, tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment a real ``meterit-central`` command needs: this database and Redis, an
    empty config file (a host's /etc/meterit/central.toml must not leak in), no other
    METERIT_ variable of the caller's; ``extra`` adds or overrides settings."""
    config = tmp_path / "central-test.toml"
    config.touch()
    env = {k: v for k, v in os.environ.items() if not k.startswith("METERIT_")}
    env |= {
        "METERIT_CONFIG": str(config),
        "METERIT_DATABASE_URL": db_url,
        "METERIT_REDIS_URL": redis_url,
    }
    return env | extra


@dataclass
class CentralWorker:
    """``central worker`` run as a subprocess by ``run_central_worker``; ``output`` is what it
    printed, filled in once it has stopped."""

    process: subprocess.Popen[bytes]
    output: str = ""

    def wait_for(
        self, done: Callable[[], bool], within_s: float, failure: str, poll_s: float
    ) -> None:
        """Poll ``done`` until it is true; fail with ``failure`` after ``within_s``, or with the
        worker's output at once if it exits meanwhile."""
        deadline = time.monotonic() + within_s
        while not done():
            out = self.process.stdout
            assert self.process.poll() is None, out.read().decode() if out else ""
            assert time.monotonic() < deadline, failure
            time.sleep(poll_s)


@contextmanager
def run_central_worker(env: dict[str, str]) -> Iterator[CentralWorker]:
    """Run ``python -m central worker`` with exactly ``env`` for the ``with`` block, then stop it
    and keep its output."""
    worker = CentralWorker(
        subprocess.Popen(
            [sys.executable, "-m", "central", "worker"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
    )
    try:
        yield worker
    finally:
        worker.process.terminate()
        worker.output = worker.process.communicate(timeout=30)[0].decode()
