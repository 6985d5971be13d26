"""Per-request cost of the sync API: requests/s and CPU ms per request through gunicorn.

Run with ``.venv/bin/python -m bench.sync_request`` (``--help`` for sizes). A fresh database,
one site of 10 meters x 10 points, ``meterit-central serve`` with production defaults (one
worker per CPU x 4 threads; ``--workers`` / ``--threads`` to compare others) and limits raised
out of the way, then in one run:

1. 100-reading batch uploads (each a new minute of readings under its own idempotency key);
2. heartbeats (10 meters, one of them unreachable);
3. reference: ``GET`` of an unknown path (a 404 through the same gunicorn, Flask and
   after-request hooks: the floor no sync endpoint can go below);
4. reference: the batch's own SQL (claim, COPY, move, store the answer) on one psycopg
   connection, in this process: the floor of the database work of a batch.

CPU is central's: gunicorn (master and workers) and the PostgreSQL backends of the database,
from /proc. What matters is the ratio to the references and CPU ms per request; the machine is
shared, so the load average is printed beside the figures.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import psycopg
import requests

from bench.fleet_watch import BackendCpu, cpu_seconds, loadavg
from bench.ingest import encode, make_rows, make_site, scratch_central
from central import database
from central.ingest import MOVE_SQL
from common import wire
from common.heartbeat import Heartbeat, MeterHeartbeat
from tests import harness
from tests.central_fixtures import CentralServer, start_central_server

METERS, POINTS = 10, 10


def heartbeat_body() -> bytes:
    now = datetime.now(UTC)
    return Heartbeat(
        sent_at=now,
        versions={"meterit": "bench"},
        backlog=0,
        oldest_unsynced_age_s=None,
        dropped_readings=0,
        collection_paused=False,
        upload_paused=False,
        meters=tuple(
            MeterHeartbeat(
                f"meter-{m:04d}",
                "unreachable" if m == 0 else "reachable",
                now,
                "no answer" if m == 0 else None,
            )
            for m in range(METERS)
        ),
        quarantined_readings=0,
    ).encode()


def run(
    server: CentralServer,
    count: int,
    clients: int,
    send: Callable[[requests.Session, int], requests.Response],
) -> tuple[float, float, float]:
    """(requests/s, gunicorn CPU ms per request, PostgreSQL CPU ms per request)."""
    backends = BackendCpu(server.db_url)
    backends.start()
    cpu0 = cpu_seconds(server.process.pid)

    def worker(slot: int) -> None:
        with requests.Session() as session:
            for i in range(slot, count, clients):
                answer = send(session, i)
                assert answer.status_code in (200, 404), (answer.status_code, answer.text[:300])

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(worker, range(clients)))
    wall = time.perf_counter() - started
    cpu = cpu_seconds(server.process.pid) - cpu0
    backends.sample()
    return count / wall, cpu * 1000 / count, backends.seconds() * 1000 / count


def bare_sql(url: str, key_site: int, rows: list[tuple[int, datetime, float]], count: int) -> float:
    """Batches/s of the batch's SQL alone on one connection (configured like the pool's)."""
    with psycopg.connect(url) as conn:
        database._configure(conn)
        started = time.perf_counter()
        for i in range(count):
            with conn.transaction():
                conn.execute(
                    """INSERT INTO sync_batches (site_id, idempotency_key, response)
                       VALUES (%s, %s, '{}') ON CONFLICT DO NOTHING RETURNING 1""",
                    (key_site, f"bare-{i}"),
                )
                shift = timedelta(minutes=i)
                with conn.cursor() as cur:
                    with cur.copy(
                        "COPY ingest_staging (point_id, ts, value) FROM STDIN (FORMAT BINARY)"
                    ) as copy:
                        copy.set_types(["int4", "timestamptz", "float8"])
                        for point_id, ts, value in rows:
                            copy.write_row((point_id, ts + shift, value))
                    cur.execute(MOVE_SQL, (key_site,)).fetchone()
                conn.execute(
                    """UPDATE sync_batches SET response = '{"accepted": 100}'
                       WHERE site_id = %s AND idempotency_key = %s""",
                    (key_site, f"bare-{i}"),
                )
        return count / (time.perf_counter() - started)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--batches", type=int, default=1000, help="100-reading batches to send")
    p.add_argument("--heartbeats", type=int, default=1000)
    p.add_argument("--clients", type=int, default=4, help="concurrent HTTP clients")
    p.add_argument("--workers", type=int, default=0, help="gunicorn workers (0: one per CPU)")
    p.add_argument("--threads", type=int, default=4, help="threads per gunicorn worker")
    args = p.parse_args(argv)

    with scratch_central() as (url, redis_url, folder):
        server: CentralServer | None = None
        try:
            key, ids = make_site(url, METERS, METERS)
            readings = make_rows(args.batches * METERS * POINTS, METERS, POINTS)
            bodies = encode(readings, METERS * POINTS)
            beat = heartbeat_body()
            server = start_central_server(
                url,
                redis_url,
                folder,
                {
                    "METERIT_RATE_LIMIT": "1000000/minute",
                    "METERIT_SYNC_READINGS_PER_MINUTE": "100000000",
                    "METERIT_GUNICORN_WORKERS": str(args.workers),
                    "METERIT_GUNICORN_THREADS": str(args.threads),
                    "METERIT_LOG_LEVEL": "warning",
                },
            )
            base = {"X-API-Key": key}
            batch_url, beat_url = server.url(wire.SYNC_READINGS), server.url(wire.SYNC_HEARTBEAT)

            def batch(session: requests.Session, i: int) -> requests.Response:
                return session.post(
                    batch_url,
                    data=bodies[i],
                    headers={
                        **base,
                        "Idempotency-Key": f"b-{i}",
                        "Content-Type": "application/json",
                        "Content-Encoding": "gzip",
                    },
                    timeout=60,
                )

            def heartbeat(session: requests.Session, i: int) -> requests.Response:
                return session.post(
                    beat_url,
                    data=beat,
                    headers={**base, "Content-Type": "application/json"},
                    timeout=60,
                )

            def floor(session: requests.Session, i: int) -> requests.Response:
                return session.get(server.url("/bench-no-such-page"), timeout=60)

            load0 = loadavg()
            results = {
                "batch (100 readings)": run(server, args.batches, args.clients, batch),
                "heartbeat": run(server, args.heartbeats, args.clients, heartbeat),
                "reference: 404 floor": run(server, args.heartbeats, args.clients, floor),
            }
            with psycopg.connect(url) as conn:
                site_id = int(harness.scalar(conn, "SELECT id FROM sites"))
                stored = harness.scalar(conn, "SELECT count(*) FROM readings")
            assert stored == args.batches * METERS * POINTS, stored
            points = list(ids.values())
            later = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(days=20)
            sample = [(points[i % len(points)], later, float(i)) for i in range(METERS * POINTS)]
            sql_rate = bare_sql(url, site_id, sample, min(args.batches, 500))

            workers = args.workers or f"one per CPU ({os.cpu_count()})"
            print(f"{args.clients} clients, gunicorn {workers} workers x {args.threads} threads")
            print(f"{'':24}{'req/s':>9}{'gunicorn ms/req':>17}{'postgres ms/req':>17}")
            for label, (rate, gcpu, pcpu) in results.items():
                print(f"{label:24}{rate:9.1f}{gcpu:17.2f}{pcpu:17.2f}")
            batch_rate = results["batch (100 readings)"][0]
            beat_rate = results["heartbeat"][0]
            floor_rate = results["reference: 404 floor"][0]
            print(f"reference: batch SQL alone, one connection: {sql_rate:9.1f} batches/s")
            print(
                f"ratios: batch / 404 floor {batch_rate / floor_rate:.2f}, heartbeat / 404 floor "
                f"{beat_rate / floor_rate:.2f}, batch / bare SQL {batch_rate / sql_rate:.2f}"
            )
            print(f"load average: {load0} at the start, {loadavg()} at the end")
            return 0
        finally:
            if server is not None:
                server.stop()


if __name__ == "__main__":
    sys.exit(main())
