"""Central MCP benchmark: the largest answer of each tool, and its latency, on a large fleet.

Run with ``.venv/bin/python -m bench.mcp`` (``--help`` for sizes). It fills a fresh database
exactly as ``bench.dashboard`` does (its ``populate``: 200 sites x 5 meters x 4 data points,
20 million readings over 35 days with their hourly rollup, a day of heartbeats), evaluates the
alert rules once (so there are alerts to list), makes an admin's MCP token, starts
``meterit-central mcp --http`` and calls every read tool through the SDK's real client over
streamable HTTP with the arguments that give its largest answer:

- ``query_meters`` — a full page (100 meters, every data point);
- ``query_readings`` — every point of a meter over 30 days at the hard cap (2,000 values),
  auto resolution; and raw readings at the cap;
- ``get_site_status`` — the summary plus the detail of 20 sites (the most allowed);
- ``list_alerts`` — a full page (100) of every alert;
- ``configure_alert_rules`` (list) — every rule with the kinds' descriptions;
- ``get_report`` — a report's status.

Size: the characters of the answer the client gets as text, divided by 4 (the usual estimate
of tokens); target < 25,000. Latency: p95 of ``--runs`` calls per tool, measured at the client
(HTTP, the SDK, the token check, the tool); target < 300 ms. The reference, in the same run, is
the bare SQL of each tool: the same domain function on one direct connection.
``--keep`` leaves the database (its URL is printed) and ``--database-url`` reuses one.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

from bench.dashboard import EMAIL, LATE_S, OFFLINE_S, freshen, populate, timed
from central import fleet, mcp_tokens, meter_search, series
from central.alerts import evaluate, rules, views
from central.connectivity import Thresholds
from central.reports import service as reports
from central.settings import CentralSettings
from common import db
from tests import harness
from tests.central_mcp_helpers import HttpServer, central_env
from tests.mcp_helpers import http_mcp

logger = logging.getLogger("bench.mcp")

MAX_TOKENS = 25_000
MAX_P95_MS = 300.0


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[18] if len(values) > 1 else values[0]


def prepare(url: str, now: datetime) -> dict[str, Any]:
    """Alerts, a report, a token and the ids the calls need."""
    with psycopg.connect(url) as conn:
        tenant, user_id = conn.execute(
            "SELECT tenant_id, id FROM users WHERE email = %s", (EMAIL,)
        ).fetchone() or (0, 0)
        if not conn.execute("SELECT 1 FROM alert_rules WHERE tenant_id = %s", (tenant,)).fetchone():
            rules.create_defaults(conn, tenant)
        conn.commit()
        evaluate.run(conn, CentralSettings(database_url=url), now)
        token = mcp_tokens.create_token(conn, user_id, tenant, "bench", "cli").plaintext
        report_id = reports.request_report(
            conn,
            tenant,
            {"site_ids": None},
            {"kind": "day", "day": f"{now:%Y-%m-%d}"},
            "UTC",
            actor="cli",
        )
        site_id, meter, meter_id = conn.execute(
            "SELECT site_id, external_id, id FROM meters ORDER BY site_id DESC, id LIMIT 1"
        ).fetchone() or (0, "", 0)
        points = [
            r[0]
            for r in conn.execute(
                "SELECT id FROM meter_points WHERE meter_id = %s ORDER BY id", (meter_id,)
            )
        ]
        detail = [r[0] for r in conn.execute("SELECT id FROM sites ORDER BY id LIMIT 20")]
        conn.commit()
    return {
        "tenant": tenant,
        "token": token,
        "report_id": report_id,
        "site_id": site_id,
        "meter": meter,
        "points": points,
        "detail": detail,
    }


def references(url: str, ids: dict[str, Any], now: datetime) -> dict[str, Callable[[], Any]]:
    """The bare SQL of each tool: its domain function on one direct connection."""
    conn = psycopg.connect(url, autocommit=True)
    conn.execute("SET TIME ZONE 'UTC'")
    tenant = ids["tenant"]
    start = now - timedelta(days=30)
    limits = Thresholds(LATE_S, OFFLINE_S)

    def readings(resolution: str) -> Callable[[], Any]:
        def run() -> Any:
            used = resolution
            if used == "auto":  # as the tool does: the probe, then the read
                used = series.choose_resolution(conn, ids["points"], start, now, 2000)
            return series.read(
                conn,
                ids["points"],
                start,
                now,
                resolution=used,
                tz="UTC",
                limit=2000,
                after=None,
                now=now,
            )

        return run

    return {
        "query_meters": lambda: meter_search.search(conn, tenant, limit=100),
        "query_readings (auto, 2,000)": readings("auto"),
        "query_readings (raw, 2,000)": readings("raw"),
        "get_site_status (20 sites)": lambda: (
            fleet.site_figures(conn, tenant, now, limits),
            views.firing_by_site(conn, tenant),
        ),
        "list_alerts (100)": lambda: views.alerts(conn, tenant, "all", limit=101),
        "configure_alert_rules (list)": lambda: rules.list_rules(conn, tenant),
        "get_report": lambda: reports.get_report(conn, tenant, ids["report_id"]),
    }


def calls(ids: dict[str, Any], now: datetime) -> dict[str, tuple[str, dict[str, Any]]]:
    start = (now - timedelta(days=30)).isoformat()
    readings = {
        "site_id": ids["site_id"],
        "meter": ids["meter"],
        "start": start,
        "end": now.isoformat(),
        "max_points": 2000,
    }
    return {
        "query_meters": ("query_meters", {"limit": 100}),
        "query_readings (auto, 2,000)": ("query_readings", readings),
        "query_readings (raw, 2,000)": ("query_readings", readings | {"resolution": "raw"}),
        "get_site_status (20 sites)": ("get_site_status", {"site_ids": ids["detail"]}),
        "list_alerts (100)": ("list_alerts", {"state": "all", "limit": 100}),
        "configure_alert_rules (list)": ("configure_alert_rules", {"action": "list"}),
        "get_report": ("get_report", {"report_id": ids["report_id"]}),
    }


async def time_tools(
    url: str, token: str, plan: dict[str, tuple[str, dict[str, Any]]], runs: int
) -> dict[str, tuple[list[float], int, str]]:
    """label -> (latencies in ms, answer characters, resolution used)."""
    out: dict[str, tuple[list[float], int, str]] = {}
    async with http_mcp(url, token) as client:
        for label, (tool, args) in plan.items():
            times: list[float] = []
            chars = 0
            used = ""
            for i in range(runs + 3):
                started = time.perf_counter()
                result = await client.call_tool(tool, args)
                elapsed = (time.perf_counter() - started) * 1000
                if result.is_error:
                    raise RuntimeError(f"{label}: {result.content}")
                if i >= 3:  # warm-up: the first calls fill the fleet caches, as in service
                    times.append(elapsed)
                chars = sum(len(getattr(b, "text", "")) for b in result.content)
                used = str((result.structured_content or {}).get("resolution_used", ""))
            out[label] = (times, chars, used)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--readings", type=int, default=20_000_000)
    parser.add_argument("--sites", type=int, default=200)
    parser.add_argument("--meters", type=int, default=5, help="meters per site")
    parser.add_argument("--runs", type=int, default=30, help="timed calls per tool")
    parser.add_argument("--database-url", help="an already populated database to reuse")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)

    admin = harness.admin_postgres_url()
    redis_url = harness.redis_server_url()
    name = None
    url = args.database_url
    folder = Path(tempfile.mkdtemp(prefix="meterit-bench-mcp-"))
    server: HttpServer | None = None
    now = datetime.now(UTC)
    try:
        if url is None:
            name = harness.create_database(admin, prefix="meterit_bench_mcp")
            url = harness.with_database(admin, name)
            db.migrate(url, harness.CENTRAL_MIGRATIONS)
            populate(url, args.sites, args.meters, args.readings, now)
        else:
            freshen(url, now)
        ids = prepare(url, now)
        with psycopg.connect(url) as conn:
            count = harness.scalar(conn, "SELECT count(*) FROM readings")
        env = central_env(url, redis_url, folder) | {
            "METERIT_HEARTBEAT_LATE_S": str(LATE_S),
            "METERIT_HEARTBEAT_OFFLINE_S": str(OFFLINE_S),
        }
        server = HttpServer(env, folder / "mcp.log")
        plan = calls(ids, now)
        measured = asyncio.run(time_tools(server.url, ids["token"], plan, args.runs))
        refs = {
            label: timed(fn, args.runs, warmup=3) for label, fn in references(url, ids, now).items()
        }
        load = os.getloadavg()
        print(f"\ncentral MCP over streamable HTTP, {count:,} readings, {args.runs} calls per tool")
        print(
            f"{'tool (largest answer)':34} {'tokens':>7} {'p50 ms':>7} {'p95 ms':>7} "
            f"{'SQL p95':>8} {'ratio':>6}  resolution"
        )
        failed = False
        for label, (times, chars, used) in measured.items():
            tokens = chars // 4
            tool_p95, ref_p95 = p95(times), p95(refs[label])
            failed |= tokens >= MAX_TOKENS or tool_p95 >= MAX_P95_MS
            print(
                f"{label:34} {tokens:>7,} {statistics.median(times):>7.1f} {tool_p95:>7.1f} "
                f"{ref_p95:>8.1f} {tool_p95 / max(ref_p95, 0.01):>6.1f}  {used}"
            )
        print(
            f"targets: < {MAX_TOKENS:,} tokens and p95 < {MAX_P95_MS:.0f} ms per tool; "
            f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} CPUs"
        )
        return 1 if failed else 0
    finally:
        if server is not None:
            server.stop()
        if name is not None:
            if args.keep:
                print(f"database kept: {url}")
            else:
                harness.drop_database(admin, name)


if __name__ == "__main__":
    sys.exit(main())
