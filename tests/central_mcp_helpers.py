"""Shared by the central MCP tests: two tenants seeded through central's own code (sites,
meters, heartbeats, readings with their hourly rollup, an alert), an MCP token per role, and the
real server as a subprocess (``python -m central mcp``) driven by the SDK's real client."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client

from central import mcp_tokens, point_days, rollup, users
from tests import central_fixtures
from tests.alert_helpers import ADMIN, Fleet
from tests.ports import free_tcp_port

ROOT = Path(__file__).resolve().parent.parent
OPERATOR = "operator@example.com"
VIEWER = "viewer@example.com"
OTHER_ADMIN = "admin@other.example"
START = datetime(2026, 11, 1, tzinfo=UTC)
DAYS = 3
READ_TOOLS = {"query_meters", "query_readings", "get_site_status", "list_alerts", "get_report"}
OPERATOR_TOOLS = READ_TOOLS | {"silence_alerts", "send_alert_email", "generate_report"}
ALL_TOOLS = OPERATOR_TOOLS | {"configure_alert_rules"}


@dataclass
class Seeded:
    db_url: str
    tenant_a: int
    tenant_b: int
    sites: dict[str, int]
    tokens: dict[str, str] = field(default_factory=dict)  # email -> plaintext token
    token_ids: dict[str, int] = field(default_factory=dict)


def _readings(conn: psycopg.Connection[Any], point_id: int, minutes: int, base: float) -> None:
    """One reading a minute from START, a power-like value that varies over the day."""
    conn.execute("SELECT ensure_readings_partitions(%s, %s)", (START, START + timedelta(days=40)))
    conn.execute(
        """INSERT INTO readings (point_id, ts, value)
           SELECT %s, %s + make_interval(mins => i), %s + (i %% 60)
           FROM generate_series(0, %s - 1) AS i""",
        (point_id, START, base, minutes),
    )
    point_days.rebuild(conn, [point_id])  # what ingest would have kept


def _point(conn: psycopg.Connection[Any], site_id: int, meter: str, point: str) -> int:
    row = conn.execute(
        """SELECT p.id FROM meter_points p JOIN meters m ON m.id = p.meter_id
           WHERE m.site_id = %s AND m.external_id = %s AND p.name = %s""",
        (site_id, meter, point),
    ).fetchone()
    assert row is not None
    return int(row[0])


def seed(db_url: str) -> Seeded:
    """Tenant ACME (admin, operator, viewer; sites plant-a with meters m0 and m1 and plant-b)
    and tenant Other (its admin; site other-site with meter m0), each user with an MCP token."""
    now = datetime.now(UTC)
    a = Fleet(db_url).setup("ACME")
    a.site("plant-a", meter_count=2, points=("power_kw", "voltage_v"))
    a.site("plant-b", meter_count=1)
    a.heartbeat(
        "plant-a",
        now,
        {"m0": ("reachable", now), "m1": ("unreachable", now - timedelta(hours=1))},
        backlog=42,
    )
    b = Fleet(db_url)
    with b.tx() as conn:
        from central import tenants

        b.tenant_id = tenants.create_tenant(conn, "Other", "cli")
        users.create_user(
            conn, b.tenant_id, email=OTHER_ADMIN, password="password-1", role="admin", actor="cli"
        )
        conn.commit()
    b.site("other-site", meter_count=1)
    b.heartbeat("other-site", now, {"m0": ("unreachable", now - timedelta(hours=2))})
    with psycopg.connect(db_url) as conn:
        for email, role in ((OPERATOR, "operator"), (VIEWER, "viewer")):
            users.create_user(
                conn, a.tenant_id, email=email, password="password-1", role=role, actor="cli"
            )
        minutes = DAYS * 24 * 60
        _readings(conn, _point(conn, a.site_ids["plant-a"], "m0", "power_kw"), minutes, 100.0)
        _readings(conn, _point(conn, a.site_ids["plant-a"], "m0", "voltage_v"), minutes, 230.0)
        _readings(conn, _point(conn, b.site_ids["other-site"], "m0", "power_kw"), minutes, 5.0)
        conn.execute(
            """INSERT INTO readings_hourly_dirty (site_id, hour)
               SELECT s, h FROM unnest(%s::int[]) AS s,
                    generate_series(%s::timestamptz, %s::timestamptz, interval '1 hour') AS h""",
            (
                [a.site_ids["plant-a"], b.site_ids["other-site"]],
                START,
                START + timedelta(days=DAYS),
            ),
        )
        conn.commit()
        rollup.run_all(conn, settle=timedelta(0))
        conn.commit()
    a.evaluate(now)
    b.evaluate(now)
    seeded = Seeded(db_url, a.tenant_id, b.tenant_id, a.site_ids | b.site_ids)
    with psycopg.connect(db_url) as conn:
        for email in (ADMIN, OPERATOR, VIEWER, OTHER_ADMIN):
            row = conn.execute(
                "SELECT id, tenant_id FROM users WHERE email = %s", (email,)
            ).fetchone()
            assert row is not None
            new = mcp_tokens.create_token(conn, row[0], row[1], f"test {email}", "cli")
            seeded.tokens[email] = new.plaintext
            seeded.token_ids[email] = new.token_id
        conn.commit()
    return seeded


def central_env(db_url: str, redis_url: str, tmp_path: Path, **extra: str) -> dict[str, str]:
    """``central_fixtures.central_env`` with room for many failed sign-ins (the tests try
    bad tokens on purpose)."""
    return central_fixtures.central_env(
        db_url, redis_url, tmp_path, **{"METERIT_MCP_AUTH_FAILURES": "1000/minute", **extra}
    )


class HttpServer:
    """``python -m central mcp --http`` on a free localhost port, as the unit runs it."""

    def __init__(self, env: dict[str, str], log_path: Path, *args: str) -> None:
        port = free_tcp_port()
        self.url = f"http://127.0.0.1:{port}/mcp"
        self.log_path = log_path
        with log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "central", "mcp", "--http", *args],
                cwd=ROOT,
                env=env | {"METERIT_MCP_BIND": f"127.0.0.1:{port}"},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 60
        while "MCP server listening" not in self.log():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"the MCP server did not come up:\n{self.log()}")
            time.sleep(0.1)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> int:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        return self.process.returncode


@asynccontextmanager
async def stdio_central(
    env: dict[str, str], stderr_path: Path, *args: str
) -> AsyncIterator[Client]:
    """``python -m central mcp --stdio`` as an assistant's client spawns it."""
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "central", "mcp", "--stdio", *args], env=env, cwd=ROOT
    )
    with stderr_path.open("w") as errlog:
        async with Client(stdio_client(params, errlog=errlog), read_timeout_seconds=60) as client:
            yield client


def audit_entries(db_url: str, action: str) -> list[tuple[str, dict[str, Any]]]:
    with psycopg.connect(db_url) as conn:
        rows = conn.execute(
            "SELECT actor, details FROM audit_log WHERE action = %s ORDER BY id", (action,)
        ).fetchall()
    return [(r[0], r[1]) for r in rows]
