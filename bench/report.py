"""Reports benchmark: a monthly report of 50 sites / 1,000 meters over 20 M readings.

Run with ``.venv/bin/python -m bench.report`` (``--help`` for sizes). It makes a fresh database
on the PostgreSQL the tests use (``tests/harness.py``): 50 sites of 20 meters, each meter an
energy counter (kWh, with a daily load curve) and a power point (kW), read every 9 minutes
through September and October 2026 (2,000 points x 9,760 = 19.5 M readings), with a counter
reset on every 50th counter and a missing day on every 37th point; the hourly rollup is made by
the rollup job's own code (``central.rollup.run_all``).

Then, in the same run:

1. **reference**: the bare SQL of the report's aggregates (``central.reports.energy_sql`` for
   October and September, and the completeness query) on one connection;
2. **report**: the worker's code (``central.reports.runner.run_one``: figures, HTML, PDF, CSV,
   stored) in a child process, which reports its wall time, its own CPU time (the PDF, mostly:
   the SQL's is in PostgreSQL) and peak RSS (``ru_maxrss``).

It prints both, their ratio and the load average. Targets (DESIGN.md): < 60 s, < 1 GB.
``--keep`` leaves the database (its URL is printed) and ``--database-url`` reuses one.
"""

from __future__ import annotations

import argparse
import logging
import os
import resource
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta

import psycopg

from central import meters, rollup, sites, tenants
from central.reports import energy_sql, runner, service
from central.reports.period import Period
from common import db
from tests import harness

logger = logging.getLogger("bench.report")

ZONE = "Europe/Paris"
START = datetime(2026, 9, 1, tzinfo=UTC) - timedelta(hours=2)  # 1 Sep 00:00 in Paris
END = datetime(2026, 11, 1, tzinfo=UTC)
POINTS = [("energy_kwh", "analog-input,1", "kWh"), ("power_kw", "analog-input,2", "kW")]

# A counter rising c kWh per step with a daily swing (monotone: the swing's slope stays below
# c), reset to 0 mid-October on every 25th counter (ids alternate counter, power); power follows the same curve.
READINGS_SQL = """
INSERT INTO readings (point_id, ts, value)
SELECT p.id, %(start)s + g.k * %(step)s,
       CASE WHEN p.name = 'energy_kwh' THEN
            CASE WHEN p.id %% 50 = 1 AND g.k >= %(reset_k)s
                 THEN %(c)s * (g.k - %(reset_k)s)
                 ELSE 1000 * (p.id %% 97) + %(c)s * g.k
                      + 20 * %(c)s * sin(2 * pi() * g.k / %(per_day)s) END
            ELSE 60 * (1 + 0.3 * sin(2 * pi() * g.k / %(per_day)s)) END
FROM meter_points p CROSS JOIN generate_series(0, %(n)s - 1) AS g (k)
WHERE p.id BETWEEN %(lo)s AND %(hi)s
  AND NOT (p.id %% 37 = 0 AND %(start)s + g.k * %(step)s >= %(gap_from)s
           AND %(start)s + g.k * %(step)s < %(gap_from)s + interval '1 day')
ORDER BY p.id, g.k
"""


def populate(url: str, n_sites: int, n_meters: int, step: timedelta) -> int:
    """Sites, meters, readings and the rollup; returns the tenant's id."""
    started = time.perf_counter()
    with psycopg.connect(url) as conn:
        tenant = tenants.create_tenant(conn, "bench", "cli")
        for s in range(n_sites):
            site_id = sites.create_site(conn, tenant, f"site-{s:03d}", "cli").site_id
            for m in range(n_meters):
                body = {
                    "external_id": f"meter-{m:02d}",
                    "address": f"10.{s // 250}.{s % 250}.{m + 10}:47808",
                    "points": [{"name": n, "object": o, "unit": u} for n, o, u in POINTS],
                }
                meters.create_meter(conn, site_id, tenant, meters.parse_meter(body), "cli")
        conn.execute("SELECT ensure_readings_partitions(%s, %s)", (START, END))
        lo, hi = conn.execute("SELECT min(id), max(id) FROM meter_points").fetchone() or (0, 0)
    n = int((END - START) / step) + 1
    per_day = timedelta(days=1) / step
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET synchronous_commit = off")
        conn.execute("SET work_mem = '256MB'")
        for first in range(lo, hi + 1, 100):
            conn.execute(
                READINGS_SQL,
                {
                    "start": START,
                    "step": step,
                    "n": n,
                    "lo": first,
                    "hi": min(hi, first + 99),
                    "c": 0.5,
                    "per_day": per_day,
                    "reset_k": int(n * 0.75),
                    "gap_from": datetime(2026, 10, 10, tzinfo=UTC),
                },
            )
            logger.info("readings: %d of %d points", min(hi, first + 99) - lo + 1, hi - lo + 1)
        loaded = time.perf_counter()
        conn.execute(
            """INSERT INTO readings_hourly_dirty (site_id, hour)
               SELECT s.id, h FROM sites s
               CROSS JOIN generate_series(%s::timestamptz, %s, '1 hour') AS h
               ON CONFLICT DO NOTHING""",
            (START.replace(minute=0), END),
        )
    with psycopg.connect(url) as conn:
        rolled_hours = rollup.run_all(conn, timedelta(0))
    rolled = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
        count = harness.scalar(conn, "SELECT count(*) FROM readings")
    print(
        f"generated {count:,} readings ({n:,} per point, every {step.total_seconds() / 60:.0f} "
        f"min) in {loaded - started:.0f} s; rollup job: {rolled_hours:,} site-hours in "
        f"{rolled - loaded:.0f} s"
    )
    return tenant


def bare_sql(url: str, period: Period, demand: timedelta) -> float:
    """The report's aggregates as plain statements on one connection (no Python shaping,
    no documents): the reference."""
    # what the report itself takes: whole intervals per hour when the period allows
    spi = energy_sql.aligned(period.start.minute * 60, int(demand.total_seconds()))
    started = time.perf_counter()
    with psycopg.connect(url) as conn:
        points = conn.execute(
            "SELECT id FROM meter_points WHERE lower(unit) = 'kwh' ORDER BY id"
        ).fetchall()
        every = [r[0] for r in conn.execute("SELECT id FROM meter_points ORDER BY id")]
        ids = [r[0] for r in points]
        for p in (period, period.previous()):
            params = {
                "points": ids,
                "factors": [1.0] * len(ids),
                "start": p.start,
                "end": p.end,
                "first_hour": p.start.replace(minute=0),
                "interval_s": int(demand.total_seconds()),
                "void_step": timedelta(minutes=15),
                "detail": p is period,
            }
            with conn.transaction():
                conn.execute("SET LOCAL jit = off")
                conn.execute("SET LOCAL work_mem = '64MB'")
                conn.execute(energy_sql.energy_sql(spi), params).fetchall()
        with conn.transaction():
            conn.execute("SET LOCAL jit = off")
            conn.execute(
                energy_sql.presence_sql(spi),
                {
                    "points": every,
                    "start": period.start,
                    "end": period.end,
                    "first_hour": period.start.replace(minute=0),
                    "interval_s": int(demand.total_seconds()),
                },
            ).fetchall()
    return time.perf_counter() - started


def make(url: str, report_id: int) -> None:
    """Child process: the worker's code for one report; prints wall time and peak RSS."""
    started = time.perf_counter()
    with psycopg.connect(url) as conn:
        made = runner.run_one(conn, url)
    wall = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_SELF)
    # the worker process's own CPU (shaping, PDF, CSV): what the load average cannot stretch
    cpu = usage.ru_utime + usage.ru_stime
    print(f"MADE {made} {wall:.3f} {usage.ru_maxrss / 1024:.1f} {cpu:.3f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sites", type=int, default=50)
    parser.add_argument("--meters", type=int, default=20, help="per site")
    parser.add_argument("--step-minutes", type=float, default=9.0)
    parser.add_argument("--database-url", help="an already populated database to reuse")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument("--make", type=int, help=argparse.SUPPRESS)  # the child's job
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if args.make is not None:
        make(args.database_url, args.make)
        return 0

    admin = harness.admin_postgres_url()
    name = None
    url = args.database_url
    if url is None:
        name = harness.create_database(admin, prefix="meterit_bench_report")
        url = harness.with_database(admin, name)
        db.migrate(url, harness.CENTRAL_MIGRATIONS)
        populate(url, args.sites, args.meters, timedelta(minutes=args.step_minutes))
    try:
        with psycopg.connect(url) as conn:
            tenant = harness.scalar(conn, "SELECT id FROM tenants WHERE name = 'bench'")
            readings = harness.scalar(conn, "SELECT count(*) FROM readings")
        period = Period.of("month", date(2026, 10, 1), ZONE)
        demand = timedelta(minutes=15)
        reference = bare_sql(url, period, demand)
        with psycopg.connect(url) as conn:
            report_id = service.request_report(
                conn, tenant, None, {"kind": "month", "day": "2026-10-01"}, ZONE, actor="bench"
            )
            conn.commit()
        started = time.perf_counter()
        child = subprocess.run(
            [sys.executable, "-m", "bench.report", "--database-url", url, "--make", str(report_id)],
            check=True,
            capture_output=True,
            text=True,
        )
        total = time.perf_counter() - started
        line = next(x for x in child.stdout.splitlines() if x.startswith("MADE "))
        _, made, wall, rss, cpu = line.split()
        assert int(made) == report_id, child.stdout + child.stderr
        with psycopg.connect(url) as conn:
            status = service.get_report(conn, tenant, report_id)
            sizes: dict[str, int] = dict(
                conn.execute(
                    "SELECT kind, length(content) FROM report_files WHERE report_id = %s",
                    (report_id,),
                ).fetchall()
            )
        assert status is not None and status["status"] == "done", status
        summary = status["summary"]
        load = os.getloadavg()
        print(
            f"monthly report, {summary['sites']} sites / {summary['meters']} meters over "
            f"{readings:,} readings: {float(wall):.1f} s in the worker's code "
            f"({total:.1f} s with interpreter start; {float(cpu):.1f} s CPU in its own process), "
            f"peak RSS {float(rss):.0f} MB "
            f"(targets < 60 s, < 1024 MB)"
        )
        print(
            f"reference, the bare SQL of its aggregates: {reference:.1f} s; "
            f"report / bare SQL = {float(wall) / reference:.2f}"
        )
        print(
            f"PDF {sizes.get('pdf', 0) / 1e6:.1f} MB, CSV {sizes.get('csv', 0) / 1e6:.1f} MB; "
            f"fleet {summary['energy_kwh']:,.0f} kWh, peak {summary['peak_kw']:,.0f} kW, "
            f"{summary['completeness_pct']:.2f} % complete, {summary['resets']} resets; "
            f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
        )
    finally:
        if args.keep or args.database_url:
            print(f"database kept: {url}")
        elif name is not None:
            harness.drop_database(admin, name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
