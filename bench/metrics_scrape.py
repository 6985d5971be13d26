"""Appliance /metrics scrape cost with a large backlog: ``appliance.metrics.render`` against an
edge database holding N unsynced readings (default 1,000,000) and 100 meters.

Run with ``.venv/bin/python -m bench.metrics_scrape`` (``--readings N``). It makes a fresh edge
database on the PostgreSQL the tests use (``tests/harness.py``) and drops it afterwards.
Reference, in the same run: the bare count of unsynced readings (the query the Sync page and the
heartbeat already run), which dominates a scrape.
"""

from __future__ import annotations

import argparse
import os
import statistics

import psycopg

from appliance import backlog, metrics
from bench.dashboard import timed
from common import db
from tests import harness


def fill(conn: psycopg.Connection[object], readings: int, meters: int = 100) -> None:
    conn.execute(
        "INSERT INTO meters (external_id, address)"
        " SELECT 'm-' || i, '10.0.0.' || i FROM generate_series(1, %s) i",
        (meters,),
    )
    conn.execute("INSERT INTO meter_status (meter_id, state) SELECT id, 'reachable' FROM meters")
    conn.execute(
        "INSERT INTO readings (meter_id, point_id, ts, value)"
        " SELECT 1 + i %% %s, 1 + i %% 1000, now() - make_interval(secs => i), i"
        " FROM generate_series(1, %s) i",
        (meters, readings),
    )
    conn.execute("VACUUM ANALYZE readings")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readings", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args(argv)
    admin = harness.admin_postgres_url()
    name = harness.create_database(admin, prefix="meterit_bench_scrape")
    url = harness.with_database(admin, name)
    try:
        db.migrate(url, harness.EDGE_MIGRATIONS)
        with psycopg.connect(url, autocommit=True) as conn:
            fill(conn, args.readings)
            scrape = statistics.median(timed(lambda: metrics.render(conn), args.runs, 2))
            count = statistics.median(timed(lambda: backlog.count(conn), args.runs, 2))
        print(f"{args.readings:,} unsynced readings, 100 meters; medians of {args.runs} runs")
        print(
            f"/metrics render: {scrape:.1f} ms; bare backlog count: {count:.1f} ms; ratio {scrape / count:.2f}"
        )
        print("load average:", " ".join(f"{x:.1f}" for x in os.getloadavg()))
    finally:
        harness.drop_database(admin, name)
        harness.stop_embedded()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
