"""Operator UI benchmark: the fleet dashboard, a site page and a month's chart, over HTTP,
at two (or more) sizes of the readings table at once.

Run with ``.venv/bin/python -m bench.dashboard`` (``--help`` for sizes). For each
``--readings N`` it makes a fresh database on the PostgreSQL the tests use
(``tests/harness.py``) and fills it in SQL (sites, keys and meters through ``central.sites`` /
``central.meters``; readings with ``generate_series``; the hourly rollup with the rollup job's
own aggregate; the summaries ingest keeps with ``point_summaries_rebuild``); each
``--database-url`` reuses a kept one instead. It starts one ``meterit-central serve`` per
database (gunicorn, one worker per CPU), signs in like a browser and times, one request after
another and alternating between the databases so both see the same load:

1. ``GET /`` — the fleet dashboard of a tenant holding every site;
2. ``GET /sites/<id>`` — a site page;
3. ``GET /explorer?site=…&point=…&range=30d`` — a month's chart (and table) of one meter.

In the same run it times the bare SQL of the same pages (the UI's own query functions on one
direct connection) as the reference, and prints p50 / p95 for both, their ratio, and per page
the ratio of the p95 on the largest database to that on the smallest.
Target (DESIGN.md): the dashboard and site pages' p95 < 50 ms on a quiet machine, and within
1.2x of each other at 2 M and 200 M readings (they read maintained summaries, not readings).
``--keep`` leaves the databases (their URLs are printed); the load average is printed.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import requests
from psycopg.types.json import Jsonb

from central import fleet, meters, sites, tenants, users
from central.connectivity import Thresholds
from central.ui import explorer
from central.ui import sites as site_pages
from common import db
from tests import harness
from tests.central_fixtures import CentralServer, start_central_server

logger = logging.getLogger("bench.dashboard")

PASSWORD = "bench password"
EMAIL = "operator@bench.example"
# name, object, unit: what a typical energy meter is polled for
POINTS = [
    ("energy_kwh", "analog-input,1", "kWh"),
    ("power_kw", "analog-input,2", "kW"),
    ("voltage_l1_v", "analog-input,3", "V"),
    ("current_l1_a", "analog-input,4", "A"),
]
SPAN = timedelta(days=35)  # so "this month" and "the last 30 days" are full of data
LATE_S, OFFLINE_S = 600, 1800

# Each point's series is a pure function of its id and the step number, so the whole table is
# one INSERT … SELECT: an energy counter rising with a daily load curve, power following that
# curve, mains voltage and a current around their nominal values.
READINGS_SQL = """
INSERT INTO readings (point_id, ts, value)
SELECT p.id, %(start)s + g.k * %(step)s,
       CASE p.name
         WHEN 'energy_kwh' THEN 1000 * (p.id %% 97) + g.k * %(hours)s * (40 + (p.id %% 13))
         WHEN 'power_kw' THEN (40 + (p.id %% 13)) * (1 + 0.4 * sin(2 * pi() * g.k * %(hours)s / 24))
                              + random() * 3
         WHEN 'voltage_l1_v' THEN 230 + random() * 4 - 2
         ELSE 60 + 25 * sin(2 * pi() * g.k * %(hours)s / 24) + random() * 5
       END
FROM meter_points p CROSS JOIN generate_series(%(k0)s, %(n)s - 1) AS g (k)
WHERE p.id BETWEEN %(lo)s AND %(hi)s
ORDER BY p.id, g.k
"""


# the same aggregate as central.rollup.RECOMPUTE_SQL, over many points at once
HOURLY_SQL = """
INSERT INTO readings_hourly AS h
    (point_id, hour, n, sum, min, max, first_ts, first_value, last_ts, last_value)
SELECT point_id, date_trunc('hour', ts), count(*), sum(value), min(value), max(value),
       min(ts), (array_agg(value ORDER BY ts))[1], max(ts), (array_agg(value ORDER BY ts DESC))[1]
FROM readings WHERE point_id BETWEEN %(lo)s AND %(hi)s AND ts >= %(since)s
GROUP BY 1, 2
ON CONFLICT (point_id, hour) DO UPDATE SET
    n = EXCLUDED.n, sum = EXCLUDED.sum, min = EXCLUDED.min, max = EXCLUDED.max,
    first_ts = EXCLUDED.first_ts, first_value = EXCLUDED.first_value,
    last_ts = EXCLUDED.last_ts, last_value = EXCLUDED.last_value
"""


def populate(url: str, n_sites: int, n_meters: int, total: int, now: datetime) -> dict[str, Any]:
    """Sites, meters, readings, rollup and heartbeats; returns what the timings need."""
    started = time.perf_counter()
    points_per_site = n_meters * len(POINTS)
    per_point = max(2, total // (n_sites * points_per_site))
    step = SPAN / per_point
    start = now - step * (per_point - 1)
    with psycopg.connect(url) as conn:
        tenant = tenants.create_tenant(conn, "bench", "cli")
        users.create_user(conn, tenant, email=EMAIL, password=PASSWORD, role="admin", actor="cli")
        for s in range(n_sites):
            created = sites.create_site(conn, tenant, f"site-{s:03d}", "cli")
            for m in range(n_meters):
                body = {
                    "external_id": f"meter-{m:02d}",
                    "address": f"10.{s // 250}.{s % 250}.{m + 10}:47808",
                    "points": [{"name": n, "object": o, "unit": u} for n, o, u in POINTS],
                }
                meters.create_meter(conn, created.site_id, tenant, meters.parse_meter(body), "cli")
        conn.execute("SELECT ensure_readings_partitions(%s, %s)", (start, now))
        lo, hi = conn.execute("SELECT min(id), max(id) FROM meter_points").fetchone() or (0, 0)
    logger.info("%d sites x %d meters x %d points made", n_sites, n_meters, len(POINTS))
    chunk = 200
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET synchronous_commit = off")
        conn.execute("SET work_mem = '256MB'")
        for first in range(lo, hi + 1, chunk):
            conn.execute(
                READINGS_SQL,
                {
                    "start": start,
                    "step": step,
                    "hours": step.total_seconds() / 3600,
                    "n": per_point,
                    "k0": 0,
                    "lo": first,
                    "hi": min(hi, first + chunk - 1),
                },
            )
            done = min(hi, first + chunk - 1) - lo + 1
            logger.info("readings: %d of %d points", done, hi - lo + 1)
        loaded = time.perf_counter()
        for first in range(lo, hi + 1, chunk * 4):
            conn.execute(
                HOURLY_SQL, {"lo": first, "hi": min(hi, first + chunk * 4 - 1), "since": start}
            )
        rolled = time.perf_counter()
        heartbeats(conn, now)
        # the steady state autovacuum keeps: statistics, and visibility maps for index-only scans
        conn.execute("VACUUM ANALYZE")
        count = harness.scalar(conn, "SELECT count(*) FROM readings")
        hourly = harness.scalar(conn, "SELECT count(*) FROM readings_hourly")
        # what ingest keeps beside the readings (central.latest, central.point_days)
        conn.execute("SELECT point_summaries_rebuild(ARRAY(SELECT id FROM meter_points))")
        summarised = time.perf_counter()
    print(
        f"generated {count:,} readings ({per_point:,} per point, every {step.total_seconds():.0f} s "
        f"over {SPAN.days} days) in {loaded - started:.0f} s; {hourly:,} hourly rows in "
        f"{rolled - loaded:.0f} s; summaries in {summarised - rolled:.0f} s"
    )
    return {"readings": count}


def freshen(url: str, now: datetime) -> None:
    """Bring a kept database up to ``now``: continue every series to the present, roll the new
    hours up and move the heartbeats forward, so a reused database looks live again."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET synchronous_commit = off")
        lo, hi = conn.execute("SELECT min(id), max(id) FROM meter_points").fetchone() or (0, 0)
        first, last, n = conn.execute(
            "SELECT min(ts), max(ts), count(*) FROM readings WHERE point_id = %s", (lo,)
        ).fetchone() or (now, now, 1)
        step = (last - first) / max(1, n - 1)
        upto = int((now - first) / step) + 1
        if upto > n:
            conn.execute("SELECT ensure_readings_partitions(%s, %s)", (last, now))
            conn.execute(
                READINGS_SQL,
                {
                    "start": first,
                    "step": step,
                    "hours": step.total_seconds() / 3600,
                    "n": upto,
                    "k0": n,
                    "lo": lo,
                    "hi": hi,
                },
            )
            since = last.replace(minute=0, second=0, microsecond=0)
            conn.execute(HOURLY_SQL, {"lo": lo, "hi": hi, "since": since})
        beat = conn.execute("SELECT max(last_heartbeat_at) FROM sites").fetchone()
        if beat and beat[0]:
            gap = now - beat[0] - timedelta(seconds=20)
            conn.execute("UPDATE heartbeats SET received_at = received_at + %s", (gap,))
            conn.execute("UPDATE sites SET last_heartbeat_at = last_heartbeat_at + %s", (gap,))
        conn.execute("SELECT point_summaries_rebuild(ARRAY(SELECT id FROM meter_points))")
        conn.execute("ANALYZE")
        logger.info("freshened to %s: %d more readings per point", now, max(0, upto - n))


def heartbeats(conn: psycopg.Connection[Any], now: datetime) -> None:
    """A day of heartbeats per site; most online, some late or offline, a few meters down."""
    site_ids = [r[0] for r in conn.execute("SELECT id FROM sites ORDER BY id")]
    rows = []
    for i, site_id in enumerate(site_ids):
        silence = 20 if i % 10 else (900 if i % 20 else 7200)
        for beat in range(288):
            at = now - timedelta(seconds=silence + 300 * beat)
            body = {
                "versions": {"meterit": "0.1.0"},
                "backlog": (i * 37 + beat) % 500,
                "oldest_unsynced_age_s": float((i * 7 + beat) % 300),
                "dropped_readings": 0 if i % 25 else 12,
                "collection_paused": False,
                "upload_paused": False,
                "meters": [
                    {
                        "external_id": f"meter-{m:02d}",
                        "state": "unreachable" if (i + m) % 17 == 0 else "reachable",
                        "since": None,
                        "last_error": None,
                    }
                    for m in range(5)
                ],
            }
            rows.append((site_id, at, Jsonb(body)))
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO heartbeats (site_id, received_at, body) VALUES (%s, %s, %s)", rows
        )
        conn.execute(
            """UPDATE sites s SET last_heartbeat_at = h.received_at, last_status = h.body
               FROM (SELECT DISTINCT ON (site_id) site_id, received_at, body FROM heartbeats
                     ORDER BY site_id, received_at DESC) h WHERE h.site_id = s.id"""
        )


def sign_in(server: CentralServer) -> requests.Session:
    """A browser-like session: the login form's CSRF token, then the form POST."""
    session = requests.Session()
    page = session.get(server.url("/login"), timeout=30).text
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match, "no CSRF token on the sign-in page"
    answer = session.post(
        server.url("/login"),
        data={"email": EMAIL, "password": PASSWORD, "csrf_token": match.group(1), "next": ""},
        timeout=30,
    )
    assert answer.ok and "Fleet" in answer.text, answer.status_code
    return session


def screenshots(server: CentralServer, pages: dict[str, str]) -> None:
    """The benchmarked pages as a browser shows them (Debian's chromium, headless)."""
    from tests.ui_browser import SCREENSHOTS, launch_browser, open_ui

    for browser in launch_browser():
        for ui in open_ui(browser, server):
            ui.login(EMAIL, PASSWORD)
            ui.page.set_viewport_size({"width": 1400, "height": 1400})
            for name, path in zip(("fleet", "site", "month"), pages.values(), strict=True):
                ui.go(path)
                ui.page.wait_for_timeout(500)
                SCREENSHOTS.mkdir(parents=True, exist_ok=True)
                ui.page.screenshot(path=str(SCREENSHOTS / f"bench-{name}.png"))  # the top
    print(f"screenshots in {SCREENSHOTS}")


def timed(fn: Callable[[], Any], runs: int, warmup: int = 5) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def p(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


@dataclass
class Target:
    """One database under test, its server and what its pages and references need."""

    url: str
    created: str | None  # the database's name if this run made it
    readings: int = 0
    server: CentralServer | None = None
    pages: dict[str, str] = field(default_factory=dict)
    fetch: dict[str, Callable[[], None]] = field(default_factory=dict)
    bare: dict[str, Callable[[], None]] = field(default_factory=dict)
    http_ms: dict[str, list[float]] = field(default_factory=dict)
    bare_ms: dict[str, list[float]] = field(default_factory=dict)
    close: list[Callable[[], None]] = field(default_factory=list)


PAGES = ("dashboard  GET /", "site page  GET /sites/<id>", "month chart GET /explorer (30 d)")
# the pages that must not depend on the number of readings (the chart reads a month of them)
FLAT = PAGES[:2]


def prepare(target: Target, redis_url: str, folder: Path) -> None:
    """Start the target's server, sign in, and bind its pages and bare-SQL references."""
    url = target.url
    with psycopg.connect(url) as conn:
        target.readings = harness.scalar(conn, "SELECT count(*) FROM readings")
        tenant = harness.scalar(conn, "SELECT tenant_id FROM users WHERE email = %s", (EMAIL,))
        site_id, meter_id = conn.execute(
            "SELECT site_id, id FROM meters ORDER BY site_id DESC, id LIMIT 1"
        ).fetchone() or (0, 0)
        point_ids = [
            r[0]
            for r in conn.execute(
                "SELECT id FROM meter_points WHERE meter_id = %s ORDER BY id", (meter_id,)
            )
        ]
    server = target.server = start_central_server(
        url,
        redis_url,
        folder,
        {
            "METERIT_GUNICORN_WORKERS": str(os.cpu_count() or 1),
            "METERIT_LOG_LEVEL": "warning",
            "METERIT_HEARTBEAT_LATE_S": str(LATE_S),
            "METERIT_HEARTBEAT_OFFLINE_S": str(OFFLINE_S),
        },
    )
    session = sign_in(server)
    month_query = "&".join(f"point={i}" for i in point_ids)
    target.pages = dict(
        zip(
            PAGES,
            ["/", f"/sites/{site_id}", f"/explorer?site={site_id}&{month_query}&range=30d"],
            strict=True,
        )
    )

    def fetch(path: str) -> Callable[[], None]:
        def go() -> None:
            answer = session.get(server.url(path), timeout=30)
            assert answer.status_code == 200, (path, answer.status_code)

        return go

    limits = Thresholds(LATE_S, OFFLINE_S)
    sql_conn = psycopg.connect(url)
    sql_conn.execute("SET TIME ZONE 'UTC'")
    target.close.append(sql_conn.close)

    def sql_dashboard() -> None:
        at = datetime.now(UTC)
        figures = fleet.site_figures(sql_conn, tenant, at, limits)
        fleet.power_series(
            sql_conn, tenant, [f.site_id for f in figures], at - timedelta(hours=24), at
        )
        sql_conn.rollback()

    def sql_site() -> None:
        site_pages.site_meters(sql_conn, site_id)
        site_pages.heartbeat_history(sql_conn, site_id)
        sql_conn.rollback()

    def sql_month() -> None:
        at = datetime.now(UTC)
        sel = explorer.Selection(site_id, point_ids, at - timedelta(days=30), at, "30d")
        explorer.site_points(sql_conn, site_id)
        explorer.series(sql_conn, sel)
        sql_conn.rollback()

    target.fetch = {label: fetch(path) for label, path in target.pages.items()}
    target.bare = dict(zip(PAGES, [sql_dashboard, sql_site, sql_month], strict=True))


def measure(targets: list[Target], runs: int) -> None:
    """Each page: warm every target, then one request per target in turn, ``runs`` times."""
    for label in PAGES:
        for kind in ("http", "bare"):
            calls = [t.fetch[label] if kind == "http" else t.bare[label] for t in targets]
            samples: list[list[float]] = [[] for _ in targets]
            for call in calls:
                timed(call, 0)
            for _ in range(runs):
                for call, out in zip(calls, samples, strict=True):
                    out.extend(timed(call, 1, warmup=0))
            for t, out in zip(targets, samples, strict=True):
                (t.http_ms if kind == "http" else t.bare_ms)[label] = out


def report(targets: list[Target], runs: int) -> bool:
    """Print the figures; True if every target was met."""
    print(
        f"{runs} sequential requests per page and database through gunicorn "
        f"({os.cpu_count()} workers) over HTTP, signed in; the databases taken in turn"
    )
    print(
        f"{'page':34} {'readings':>12} {'HTTP p50':>9} {'p95':>8}   {'bare SQL p50':>12} "
        f"{'p95':>8} {'HTTP/SQL':>8}"
    )
    ok = True
    for label in PAGES:
        for t in targets:
            http, bare = t.http_ms[label], t.bare_ms[label]
            print(
                f"{label:34} {t.readings:>12,} {p(http, 50):7.1f}ms {p(http, 95):6.1f}ms   "
                f"{p(bare, 50):10.1f}ms {p(bare, 95):6.1f}ms {p(http, 95) / p(bare, 95):7.2f}x"
            )
            if label in FLAT:
                ok = ok and p(http, 95) < 50
        if len(targets) > 1:
            small = min(targets, key=lambda t: t.readings)
            big = max(targets, key=lambda t: t.readings)
            ratio = p(big.http_ms[label], 95) / p(small.http_ms[label], 95)
            bare_ratio = p(big.bare_ms[label], 95) / p(small.bare_ms[label], 95)
            print(
                f"{'':34} p95 at {big.readings:,} / at {small.readings:,}: HTTP {ratio:.2f}x, "
                f"bare SQL {bare_ratio:.2f}x"
            )
            if label in FLAT:
                ok = ok and ratio <= 1.2
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--readings",
        type=int,
        action="append",
        help="generate a database of this many readings (repeat for several; default 2 M)",
    )
    parser.add_argument("--sites", type=int, default=200)
    parser.add_argument("--meters", type=int, default=5, help="meters per site")
    parser.add_argument("--runs", type=int, default=200, help="timed requests per page")
    parser.add_argument(
        "--database-url", action="append", default=[], help="a populated database to reuse"
    )
    parser.add_argument("--keep", action="store_true", help="keep the databases afterwards")
    parser.add_argument(
        "--screenshots", action="store_true", help="also save the pages as artifacts/screenshots/"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    sizes = args.readings or ([] if args.database_url else [2_000_000])

    admin = harness.admin_postgres_url()
    redis_url = harness.redis_server_url()
    folder = Path(tempfile.mkdtemp(prefix="meterit-bench-ui-"))
    targets = [Target(url, None) for url in args.database_url]
    try:
        for size in sizes:
            name = harness.create_database(admin, prefix="meterit_bench_ui")
            targets.append(Target(harness.with_database(admin, name), name))
            db.migrate(targets[-1].url, harness.CENTRAL_MIGRATIONS)
            populate(targets[-1].url, args.sites, args.meters, size, datetime.now(UTC))
        for target in targets:
            if target.created is None:
                db.migrate(target.url, harness.CENTRAL_MIGRATIONS)  # a kept one may be older
                freshen(target.url, datetime.now(UTC))
        for target in targets:
            prepare(target, redis_url, folder)
        before = Path("/proc/loadavg").read_text().split()[:3]
        measure(targets, args.runs)
        after = Path("/proc/loadavg").read_text().split()[:3]
        ok = report(targets, args.runs)
        if args.screenshots and targets[0].server:
            screenshots(targets[0].server, targets[0].pages)
        print(
            f"/proc/loadavg before: {' '.join(before)}, after: {' '.join(after)} "
            f"({os.cpu_count()} CPUs)"
        )
        print(
            "target met (p95 < 50 ms, flat within 1.2x)"
            if ok
            else "TARGET MISSED (p95 < 50 ms, flat within 1.2x)"
        )
        for target in targets:
            if args.keep and target.created:
                print(f"kept the database: {target.url}")
        return 0 if ok else 1
    finally:
        for target in targets:
            for close in target.close:
                close()
            if target.server is not None:
                target.server.stop()
            if target.created and not args.keep:
                harness.drop_database(admin, target.created)
        harness.stop_embedded()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
