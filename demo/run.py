"""``python -m demo`` (``make demo``): central, one appliance and simulated meters, in one terminal.

PostgreSQL and Redis are the ones named by ``METERIT_DEMO_DATABASE_URL`` (an admin URL that may
create databases) and ``METERIT_DEMO_REDIS_URL``, or else embedded ones whose data lives in
``.demo/`` so a second run resumes with the same data. Everything else is the real thing: the
daemons run as the same commands systemd runs, only with demo settings.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import secrets
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psycopg

from appliance import cli as appliance_cli
from appliance.bacnet.simulator import SimMeterSpec, meters_document
from central import cli as central_cli
from central import keys, meters, sites, tenants, users
from common import db
from common.embedded import EmbeddedPostgres, EmbeddedRedis, reachable
from common.logs import setup_logging
from demo.supervisor import Service, Supervisor
from web import password as web_password

logger = logging.getLogger("meterit.demo")

TENANT = "Demo Energy Co"
SITE = "Demo site"
ADMIN_EMAIL = "admin@demo.meterit"
ADMIN_PASSWORD = "demo-admin-password"
METERS = 5
PORTS = {"central": 8000, "web": 8080, "mcp": 8765}
BACNET_BASE_PORT = 47901
COLLECTOR_BACNET = "127.0.0.1:47850"
DEMO_TREND_S = 900  # the simulated meters log every point every 15 minutes
ENV_FILE = "appliance.env"  # in the demo's directory; named in README.md


class DemoError(Exception):
    """The demo cannot start; the message names the cause and the fix."""


def _with_db(url: str, name: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    return urlunsplit(urlsplit(url)._replace(path="/" + name))


def _ensure_database(admin_url: str, name: str) -> str:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
            conn.execute(f'CREATE DATABASE "{name}"')
    return _with_db(admin_url, name)


def _check_ports(simulated: int) -> None:
    busy = [f"{name} {port}" for name, port in PORTS.items() if reachable("127.0.0.1", port)]
    if busy:
        raise DemoError(
            f"port(s) already in use: {', '.join(busy)}; stop what listens there "
            "(an earlier demo?) and run again"
        )
    del simulated  # UDP ports are checked by the simulator itself, with its own message


def _enroll(central_url: str, state_file: Path, specs: list[SimMeterSpec]) -> dict[str, Any]:
    """Tenant, operator login, site with its key and the site's meters — once; later runs reuse
    them. A key is shown only once, so it is kept in the demo's state file; if that file was
    lost, the site gets a fresh key."""
    if state_file.exists():
        return dict(json.loads(state_file.read_text()))
    with psycopg.connect(central_url) as conn:
        row = conn.execute(
            "SELECT s.id FROM sites s JOIN tenants t ON t.id = s.tenant_id "
            "WHERE t.name = %s AND s.name = %s",
            (TENANT, SITE),
        ).fetchone()
        if row is not None:
            site_id, key = int(row[0]), keys.create_key(conn, int(row[0]), "demo")
        else:
            tenant_id = tenants.create_tenant(conn, TENANT, "demo")
            users.create_user(
                conn,
                tenant_id,
                email=ADMIN_EMAIL,
                password=ADMIN_PASSWORD,
                role="admin",
                actor="demo",
            )
            site = sites.create_site(conn, tenant_id, SITE, "demo")
            site_id, key = site.site_id, site.key
            for meter in meters_document(specs):
                meters.create_meter(conn, site_id, tenant_id, meters.parse_meter(meter), "demo")
        conn.commit()
    state = {"site_id": site_id, "api_key": key.plaintext}
    state_file.write_text(json.dumps(state))
    state_file.chmod(0o600)
    return state


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m demo",
        description="Run central, one appliance and simulated meters in one terminal.",
    )
    parser.add_argument("--dir", default=".demo", help="where embedded data and state live")
    parser.add_argument("--meters", type=int, default=METERS, help="simulated meters")
    parser.add_argument("--poll-interval", type=int, default=10, help="seconds between polls")
    args = parser.parse_args(argv)
    setup_logging("meterit-demo")
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    supervisor = Supervisor()
    embedded: list[Any] = []
    try:
        return _run(args, stop, supervisor, embedded)
    except DemoError as err:
        logger.error("demo cannot start: %s", err)
        return 1
    finally:
        supervisor.stop()
        for server in reversed(embedded):
            server.stop()
        logger.info("demo stopped; its data stays in %s for the next run", args.dir)


def _run(
    args: argparse.Namespace, stop: threading.Event, supervisor: Supervisor, embedded: list[Any]
) -> int:
    data = Path(args.dir).resolve()
    data.mkdir(parents=True, exist_ok=True)
    _check_ports(args.meters)

    admin_url = os.environ.get("METERIT_DEMO_DATABASE_URL")
    if not admin_url:
        pg = EmbeddedPostgres(data / "postgres")
        embedded.append(pg)
        admin_url = pg.url
    redis_url = os.environ.get("METERIT_DEMO_REDIS_URL")
    if not redis_url:
        redis = EmbeddedRedis(data / "redis")
        embedded.append(redis)
        redis_url = redis.url

    central_db = _ensure_database(admin_url, "meterit_demo_central")
    edge_db = _ensure_database(admin_url, "meterit_demo_edge")
    db.migrate(central_db, central_cli.MIGRATIONS)
    db.migrate(edge_db, appliance_cli.MIGRATIONS)

    specs = [
        SimMeterSpec(device_instance=1000 + i, port=BACNET_BASE_PORT + i, points=10)
        for i in range(args.meters)
    ]
    state = _enroll(central_db, data / "state.json", specs)
    central_url = f"http://127.0.0.1:{PORTS['central']}"
    mcp_token_file = _secret_file(data / "mcp-token", secrets.token_urlsafe(24))
    web_password_file = _secret_file(data / "web-password", web_password.generate())

    python = sys.executable
    central_env = {
        "METERIT_DATABASE_URL": central_db,
        "METERIT_REDIS_URL": redis_url,
        "METERIT_BIND": f"127.0.0.1:{PORTS['central']}",
        "METERIT_RATE_LIMIT": "10000/minute",
    }
    edge_env = {
        "METERIT_DATABASE_URL": edge_db,
        "METERIT_REDIS_URL": redis_url,
        "METERIT_CENTRAL_URL": central_url,
        "METERIT_API_KEY": str(state["api_key"]),
        "METERIT_BACNET_ADDRESS": COLLECTOR_BACNET,
        "METERIT_POLL_INTERVAL_S": str(args.poll_interval),
        "METERIT_UPLOAD_INTERVAL_S": "10",
        "METERIT_HEARTBEAT_INTERVAL_S": "30",
        "METERIT_WEB_BIND": f"127.0.0.1:{PORTS['web']}",
        "METERIT_MCP_BIND": f"127.0.0.1:{PORTS['mcp']}",
        "METERIT_MCP_TOKEN_FILE": str(mcp_token_file),
        "METERIT_WEB_PASSWORD_HASH_FILE": str(data / "web-password.argon2"),
        "METERIT_WEB_INITIAL_PASSWORD_FILE": str(web_password_file),
        "METERIT_WEB_SECRET_KEY_FILE": str(
            _secret_file(data / "web-secret", secrets.token_hex(32))
        ),
    }
    appliance = [python, "-m", "appliance"]
    supervisor.start(
        Service(
            "meters",
            [
                *appliance,
                "simulate",
                "--count",
                str(args.meters),
                "--base-port",
                str(BACNET_BASE_PORT),
                "--first-instance",
                "1000",
                "--points",
                "10",
                # a week of trend history: the first start reads it back, so every chart (local
                # and central) is full at once, and the backfill path runs on every demo
                "--trend-interval-s",
                str(DEMO_TREND_S),
            ],
        )
    )
    supervisor.start(Service("central", [python, "-m", "central", "serve"], central_env))
    _wait_for_port("central", PORTS["central"], supervisor)
    supervisor.start(Service("rollup", [python, "-m", "central", "worker"], central_env))
    supervisor.start(Service("worker", [*appliance, "worker"], edge_env))
    supervisor.start(Service("collector", [*appliance, "collector"], edge_env))
    supervisor.start(Service("web", [*appliance, "web"], edge_env))
    # no meter sync of our own here: the worker pulls the meters at start, and a second pull
    # at the same moment was refused ("another meter sync is running") on every start
    supervisor.start(Service("mcp", [*appliance, "mcp"], edge_env))
    env_file = _write_env_file(data / ENV_FILE, edge_env)

    _banner(
        central_url,
        web_password_file.read_text().strip(),
        mcp_token_file.read_text().strip(),
        args.meters,
        env_file,
    )
    dead = supervisor.wait(stop)
    if dead is not None:
        logger.error(
            "%s exited with code %s; see its lines above. Stopping the demo.",
            dead.name,
            dead.process.returncode if dead.process else "?",
        )
        return 1
    return 0


def _secret_file(path: Path, value: str) -> Path:
    """A secret made on the first run and kept for the next ones, readable by its owner only."""
    if not path.exists():
        path.write_text(value + "\n")
        path.chmod(0o600)
    return path


def _write_env_file(path: Path, env: dict[str, str]) -> Path:
    """The demo appliance's settings as systemd's EnvironmentFile= reads them, so that
    ``meterit-appliance --env-file .demo/appliance.env COMMAND`` (doctor, sync-now, mcp --stdio)
    talks to this appliance. It holds the site's API key: its owner alone may read it."""
    lines = ["# the `make demo` appliance's settings: meterit-appliance --env-file THIS COMMAND"]
    lines += [f"{name}={value}" for name, value in sorted(env.items())]
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_text("\n".join(lines) + "\n")
    return path


def _wait_for_port(name: str, port: int, supervisor: Supervisor, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if reachable("127.0.0.1", port):
            return
        dead = supervisor.failed()
        if dead is not None:
            raise DemoError(f"{dead.name} exited during start; see its lines above")
        time.sleep(0.3)
    raise DemoError(f"{name} did not listen on port {port} within {timeout:.0f} s")


def _banner(
    central_url: str, ui_password: str, mcp_token: str, meters: int, env_file: Path
) -> None:
    lines = [
        "",
        "MeterIT demo is running. Readings reach central within a minute.",
        f"  Central operator UI  {central_url}/   login {ADMIN_EMAIL} / {ADMIN_PASSWORD}",
        f"  Appliance local UI   http://127.0.0.1:{PORTS['web']}/   login admin / {ui_password}",
        f"  Appliance MCP        http://127.0.0.1:{PORTS['mcp']}/mcp   bearer token {mcp_token}",
        f"  Simulated meters     {meters} BACnet/IP devices on 127.0.0.1:{BACNET_BASE_PORT}+",
        f"  Appliance settings   {env_file}: meterit-appliance --env-file {env_file} doctor",
        "                       (or config, sync-now, mcp --stdio)",
        "  Ctrl-C stops everything; running it again resumes with the same data.",
        "",
    ]
    for line in lines:
        logger.info("%s", line)
