"""Collector commit benchmark: what the triggers on ``readings`` add to writing a poll cycle.

Run with ``.venv/bin/python -m bench.cycle_write`` (``--help`` for sizes). It makes a fresh edge
database on the PostgreSQL the tests use (``tests/harness.py``) with 200 meters x 20 points (the
cycle of DESIGN.md's collector target), then commits poll cycles with the collector's own
``write_cycle`` (COPY of every reading, the meters' status, one transaction), alternating cycles
with the insert triggers that keep ``point_latest`` (migration 0008) and ``upload_queue`` (0010)
enabled and disabled (the reference: the bare write, before either existed), and prints p50 /
p95 of both, their ratio and the load average.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

from appliance.collector.meters import load_meters
from appliance.collector.poll import MeterResult
from appliance.collector.store import write_cycle
from common import db
from tests import harness

TRIGGERS = ("readings_point_latest_insert", "readings_upload_queue_insert")


def setup(url: str, meters: int, points: int) -> None:
    with psycopg.connect(url) as conn:
        conn.execute(
            """INSERT INTO meters (external_id, address, device_instance)
               SELECT 'meter-' || m, '10.0.' || m / 200 || '.' || m %% 200 + 10, 1000 + m
               FROM generate_series(0, %s - 1) AS m""",
            (meters,),
        )
        conn.execute(
            """INSERT INTO meter_points (meter_id, name, object_type, object_instance)
               SELECT m.id, 'p' || i, 'analog-input', i FROM meters m,
                      generate_series(1, %s) AS i""",
            (points,),
        )


async def run(url: str, cycles: int) -> tuple[list[float], list[float]]:
    conn = await psycopg.AsyncConnection.connect(url, autocommit=True)
    try:
        polled = await load_meters(conn)
        with_triggers: list[float] = []
        without: list[float] = []
        start = datetime.now(UTC) - timedelta(days=1)
        for k in range(cycles * 2):
            triggered = k % 2 == 0
            for trigger in TRIGGERS:
                state = "ENABLE" if triggered else "DISABLE"
                await conn.execute(f"ALTER TABLE readings {state} TRIGGER {trigger}")
            at = start + timedelta(seconds=k)
            results = [
                MeterResult(m, at, {p.point_id: float(k + p.point_id) for p in m.points}, {})
                for m in polled
            ]
            began = time.perf_counter()
            await write_cycle(conn, results)
            (with_triggers if triggered else without).append((time.perf_counter() - began) * 1000)
        return with_triggers, without
    finally:
        await conn.close()


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[94]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--meters", type=int, default=200)
    parser.add_argument("--points", type=int, default=20)
    parser.add_argument("--cycles", type=int, default=100, help="timed cycles of each kind")
    args = parser.parse_args(argv)
    admin = harness.admin_postgres_url()
    name = harness.create_database(admin, prefix="meterit_bench_cycle")
    try:
        url = harness.with_database(admin, name)
        db.migrate(url, harness.EDGE_MIGRATIONS)
        setup(url, args.meters, args.points)
        asyncio.run(run(url, 5))  # warm: plans, caches, the first rows of point_latest
        triggered, bare = asyncio.run(run(url, args.cycles))
        with psycopg.connect(url) as conn:
            kept: Any = conn.execute("SELECT count(*) FROM point_latest").fetchone()
        print(
            f"{args.meters} meters x {args.points} points, {args.cycles} cycles each, alternated"
            f" ({kept[0]} points kept in point_latest)"
        )
        print(
            f"write_cycle with both triggers:   p50 {statistics.median(triggered):6.1f} ms"
            f"  p95 {p95(triggered):6.1f} ms"
        )
        print(
            f"write_cycle without (reference):  p50 {statistics.median(bare):6.1f} ms"
            f"  p95 {p95(bare):6.1f} ms"
        )
        print(
            f"ratio p50 {statistics.median(triggered) / statistics.median(bare):.2f}x,"
            f" p95 {p95(triggered) / p95(bare):.2f}x;"
            f" /proc/loadavg: {Path('/proc/loadavg').read_text().strip()}"
        )
        return 0
    finally:
        harness.drop_database(admin, name)
        harness.stop_embedded()


if __name__ == "__main__":
    sys.exit(main())
