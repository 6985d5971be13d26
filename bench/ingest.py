"""Central ingest benchmark: readings/s through gunicorn over HTTP vs raw ``psql \\copy``.

Run from a fresh clone with ``.venv/bin/python -m bench.ingest`` (``--help`` for sizes). It
makes a fresh database (the same PostgreSQL the tests use, see ``tests/harness.py``), starts
``meterit-central serve`` on it, and in one run measures:

1. HTTP ingest: realistic gzip batches (meters x data points, time-ordered, as an appliance's
   upload job sends them) pushed by concurrent clients into an empty ``readings`` table;
2. replay: the same batches with the same idempotency keys (stored answers, nothing written);
3. all-duplicates: the same readings under new idempotency keys (every row a conflict);
4. reference: ``readings`` emptied again, then ``psql \\copy`` of the same rows into it.

Targets (DESIGN.md): >= 50,000 readings/s over HTTP and >= 0.25 of the \\copy rate.
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import requests

from central import meters, sites, tenants
from common import db
from common.wire import SYNC_READINGS, encode_batch, reading_item
from tests import harness
from tests.central_fixtures import CentralServer, start_central_server

POINTS = [
    ("energy_kwh", "kWh"),
    ("power_kw", "kW"),
    ("voltage_l1", "V"),
    ("voltage_l2", "V"),
    ("voltage_l3", "V"),
    ("current_l1", "A"),
    ("current_l2", "A"),
    ("current_l3", "A"),
    ("power_factor", ""),
    ("frequency_hz", "Hz"),
]


def make_site(url: str, n_meters: int, n_points: int) -> tuple[str, dict[tuple[str, str], int]]:
    """A tenant, a site and its meters; returns the API key and the point ids (for \\copy)."""
    with psycopg.connect(url) as conn:
        tenant = tenants.create_tenant(conn, "bench", "cli")
        site = sites.create_site(conn, tenant, "bench-site", "cli")
        for m in range(n_meters):
            body = {
                "external_id": f"meter-{m:04d}",
                "address": f"10.0.{m // 250}.{m % 250 + 1}:47808",
                "points": [
                    {"name": name, "object": f"analog-input,{i}", "unit": unit}
                    for i, (name, unit) in enumerate(POINTS[:n_points])
                ],
            }
            meters.create_meter(conn, site.site_id, tenant, meters.parse_meter(body), "cli")
        ids = {
            (r[0], r[1]): r[2]
            for r in conn.execute(
                "SELECT m.external_id, p.name, p.id FROM meters m JOIN meter_points p ON p.meter_id = m.id"
            )
        }
    return site.key.plaintext, ids


def make_rows(
    total: int, n_meters: int, n_points: int
) -> list[tuple[str, str, datetime, float, str]]:
    """Time-ordered readings: every meter's points each minute, values drifting like meters."""
    rows: list[tuple[str, str, datetime, float, str]] = []
    start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(days=7)
    tick = 0
    while len(rows) < total:
        ts = start + timedelta(minutes=tick)
        for m in range(n_meters):
            for p, (name, unit) in enumerate(POINTS[:n_points]):
                value = round(1000 + m * 10 + p + tick * 0.25 + (m * p % 7) * 0.01, 3)
                rows.append((f"meter-{m:04d}", name, ts, value, unit))
                if len(rows) == total:
                    return rows
        tick += 1
    return rows


def encode(rows: list[tuple[str, str, datetime, float, str]], batch: int) -> list[bytes]:
    return [
        encode_batch([reading_item(*r) for r in rows[i : i + batch]])
        for i in range(0, len(rows), batch)
    ]


def push(
    server: CentralServer, key: str, bodies: list[bytes], clients: int, prefix: str
) -> tuple[float, dict[str, int]]:
    """Send every body once from ``clients`` threads; (seconds, summed answer counts)."""
    totals = {"accepted": 0, "duplicates": 0, "rejected": 0}
    url = server.url(SYNC_READINGS)

    def worker(slot: int) -> dict[str, int]:
        mine = {"accepted": 0, "duplicates": 0, "rejected": 0}
        with requests.Session() as session:
            for i in range(slot, len(bodies), clients):
                answer = session.post(
                    url,
                    data=bodies[i],
                    headers={
                        "X-API-Key": key,
                        "Idempotency-Key": f"{prefix}-{i}",
                        "Content-Type": "application/json",
                        "Content-Encoding": "gzip",
                    },
                    timeout=120,
                )
                answer.raise_for_status()
                body: dict[str, Any] = answer.json()
                mine["accepted"] += body["accepted"]
                mine["duplicates"] += body["duplicates"]
                mine["rejected"] += len(body["rejected"])
        return mine

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        for part in pool.map(worker, range(clients)):
            for k, v in part.items():
                totals[k] += v
    return time.perf_counter() - started, totals


def _bundled_psql() -> str | None:
    """The psql shipped inside pgserver (the embedded PostgreSQL), for bare machines."""
    try:
        import pgserver
    except ImportError:
        return None
    candidate = Path(pgserver.__file__).parent / "pginstall" / "bin" / "psql"
    return str(candidate) if candidate.exists() else None


def psql_copy(
    url: str,
    rows: list[tuple[str, str, datetime, float, str]],
    ids: dict[tuple[str, str], int],
    folder: Path,
) -> float:
    path = folder / "readings.csv"
    with path.open("w", newline="") as fh:
        out = csv.writer(fh)
        for meter, point, ts, value, _ in rows:
            out.writerow((ids[meter, point], ts.isoformat(), value))
    return time_psql_copy(url, path)


def time_psql_copy(url: str, path: Path) -> float:
    """Empty central's readings, then time ``psql \\copy`` of a (point_id, ts, value) CSV into
    them: the floor any way of storing the same readings is measured against."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("TRUNCATE readings, readings_hourly")
        conn.execute("VACUUM ANALYZE readings")
    psql = shutil.which("psql") or _bundled_psql()
    if psql is None:
        raise SystemExit("psql not found: install the PostgreSQL client to run the reference")
    started = time.perf_counter()
    subprocess.run(
        [
            psql,
            url,
            "-v",
            "ON_ERROR_STOP=1",
            "-qc",
            f"\\copy readings (point_id, ts, value) FROM '{path}' WITH (FORMAT csv)",
        ],
        check=True,
    )
    return time.perf_counter() - started


@contextmanager
def scratch_central() -> Iterator[tuple[str, str, Path]]:
    """A migrated central database of the bench's own (dropped after), the tests' Redis and a
    scratch folder: (database URL, Redis URL, folder)."""
    admin = harness.admin_postgres_url()
    name = harness.create_database(admin, prefix="meterit_bench")
    folder = Path(tempfile.mkdtemp(prefix="meterit-bench-"))
    try:
        url = harness.with_database(admin, name)
        db.migrate(url, harness.CENTRAL_MIGRATIONS)
        yield url, harness.redis_server_url(), folder
    finally:
        harness.drop_database(admin, name)
        harness.stop_embedded()
        shutil.rmtree(folder, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--readings", type=int, default=500_000)
    p.add_argument("--batch", type=int, default=5000, help="readings per HTTP batch")
    p.add_argument("--meters", type=int, default=200)
    p.add_argument(
        "--points", type=int, default=10, help=f"data points per meter (<= {len(POINTS)})"
    )
    p.add_argument("--clients", type=int, default=4, help="concurrent HTTP clients")
    p.add_argument("--workers", type=int, default=0, help="gunicorn workers (0: one per CPU)")
    p.add_argument("--threads", type=int, default=4, help="threads per gunicorn worker")
    args = p.parse_args(argv)

    with scratch_central() as (url, redis_url, folder):
        server: CentralServer | None = None
        try:
            key, ids = make_site(url, args.meters, args.points)
            rows = make_rows(args.readings, args.meters, args.points)
            bodies = encode(rows, args.batch)
            size = sum(len(b) for b in bodies)
            print(
                f"{len(rows):,} readings, {len(bodies)} gzip batches of {args.batch} ({size / 1e6:.1f} MB), "
                f"{args.meters} meters x {args.points} points, {args.clients} clients"
            )
            server = start_central_server(
                url,
                redis_url,
                folder,
                {
                    "METERIT_RATE_LIMIT": "1000000/minute",
                    "METERIT_GUNICORN_WORKERS": str(args.workers),
                    "METERIT_GUNICORN_THREADS": str(args.threads),
                    "METERIT_LOG_LEVEL": "warning",
                },
            )
            http_s, counts = push(server, key, bodies, args.clients, "b")
            assert counts == {"accepted": len(rows), "duplicates": 0, "rejected": 0}, counts
            replay_s, replayed = push(server, key, bodies, args.clients, "b")
            assert replayed == counts, replayed
            dup_s, dups = push(server, key, bodies, args.clients, "again")
            assert dups == {"accepted": 0, "duplicates": len(rows), "rejected": 0}, dups
            copy_s = psql_copy(url, rows, ids, folder)
            with psycopg.connect(url) as conn:
                copied = harness.scalar(conn, "SELECT count(*) FROM readings")
            assert copied == len(rows), copied

            http_rate, copy_rate = len(rows) / http_s, len(rows) / copy_s
            print(f"HTTP ingest (gunicorn, gzip): {http_rate:12,.0f} readings/s  ({http_s:.2f} s)")
            print(f"psql \\copy reference:         {copy_rate:12,.0f} readings/s  ({copy_s:.2f} s)")
            print(
                f"ratio HTTP / \\copy:           {http_rate / copy_rate:12.2f}   (target >= 0.25)"
            )
            print(
                f"replay, same batch ids:       {len(rows) / replay_s:12,.0f} readings/s  ({replay_s:.2f} s)"
            )
            print(
                f"all duplicates, new batch ids:{len(rows) / dup_s:12,.0f} readings/s  ({dup_s:.2f} s)"
            )
            load = os.getloadavg()
            print(
                f"load average at the end: {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} on {os.cpu_count()} CPUs"
                " (other work on the machine lowers both rates; the ratio is the steadier figure)"
            )
            ok = http_rate >= 50_000 and http_rate / copy_rate >= 0.25
            print(
                "targets met" if ok else "TARGETS MISSED (>= 50,000 readings/s and ratio >= 0.25)"
            )
            return 0 if ok else 1
        finally:
            if server is not None:
                server.stop()


if __name__ == "__main__":
    sys.exit(main())
