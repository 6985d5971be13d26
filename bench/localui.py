"""Local web UI benchmark: the technician's dashboard on a full appliance, over HTTP.

Run with ``.venv/bin/python -m bench.localui`` (``--help`` for sizes). It makes a fresh edge
database on the PostgreSQL the tests use (``tests/harness.py``), adds 100 meters x 10 points and
COPYs in 7 days (or ``--readings N`` in all) of one-per-minute readings (~10 million rows; all
synced but the last ``--unsynced-minutes``, default 10, as on a healthy site), starts
``meterit-appliance web`` (gunicorn), logs in like a browser and times, one request after
another:

1. ``GET /`` — the dashboard page (every meter's status and newest values, embedded), each
   time right after a simulated collector commit (a reading of every point);
2. ``GET /api/local/meters`` — what the open dashboard polls every few seconds, both right
   after a collector commit and between two;
3. ``GET /api/local/series?…&hours=24`` — one card's 24 h chart.

In the same run it times the bare SQL behind the dashboard (``service.get_meter_status`` and
``web.queries.latest_values`` in-process, no HTTP, Flask or JSON) as the reference, and prints
p50 / p95 for all and the load average. Target (DESIGN.md): dashboard p95 < 50 ms on a quiet
machine, the same at any number of readings (it reads ``point_latest``, not the readings).
``--keep`` leaves the database (its URL is printed) and ``--database-url`` reuses one.
"""

from __future__ import annotations

import argparse
import io
import logging
import re
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import requests

from appliance import service
from appliance.settings import ApplianceSettings
from common import db
from tests import harness
from tests.ports import free_tcp_port
from tests.sync_helpers import ApplianceProcess, settings_env, wait_until
from web import password, queries

logger = logging.getLogger("bench.localui")

PASSWORD = "bench-password-123"
POINT_NAMES = [
    ("energy_kwh", "kWh"),
    ("power_kw", "kW"),
    ("voltage_l1_v", "V"),
    ("voltage_l2_v", "V"),
    ("voltage_l3_v", "V"),
    ("current_l1_a", "A"),
    ("current_l2_a", "A"),
    ("current_l3_a", "A"),
    ("power_factor", ""),
    ("frequency_hz", "Hz"),
]
INDEXES = ("readings_point_ts", "readings_ts_brin")
QUEUE_TRIGGER = "readings_upload_queue_insert"


def populate(url: str, meters: int, points: int, per_point: int, unsynced_minutes: int) -> int:
    """Meters, points, statuses, and ``per_point`` one-a-minute readings of each point by COPY
    (indexes dropped meanwhile and rebuilt, as a restore would); returns the number of readings."""
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    start = now - timedelta(minutes=per_point)
    synced_before = now - timedelta(minutes=unsynced_minutes)
    with psycopg.connect(url) as conn:
        for m in range(meters):
            meter_id = conn.execute(
                "INSERT INTO meters (external_id, name, address, device_instance, source)"
                " VALUES (%s, %s, %s, %s, 'central') RETURNING id",
                (
                    f"meter-{m:03d}",
                    f"Distribution board {m + 1}",
                    f"10.0.{m // 200}.{m % 200 + 10}",
                    1000 + m,
                ),
            ).fetchone()[0]  # type: ignore[index]
            for i, (name, unit) in enumerate(POINT_NAMES[:points]):
                conn.execute(
                    "INSERT INTO meter_points (meter_id, name, object_type, object_instance, unit)"
                    " VALUES (%s, %s, 'analog-input', %s, %s)",
                    (meter_id, name, i + 1, unit),
                )
            conn.execute(
                "INSERT INTO meter_status (meter_id, state, state_since, last_reading_at)"
                " VALUES (%s, %s, %s, %s)",
                (meter_id, "unreachable" if m % 37 == 5 else "reachable", start, now),
            )
        rows = conn.execute("SELECT meter_id, id FROM meter_points ORDER BY id").fetchall()
        for index in INDEXES:
            conn.execute(f"DROP INDEX {index}")
        # the synced readings never enter the upload queue: it is filled with the rest after
        conn.execute(f"ALTER TABLE readings DISABLE TRIGGER {QUEUE_TRIGGER}")
        conn.commit()
        begun = time.perf_counter()
        stamps = [(start + timedelta(minutes=k)) for k in range(per_point)]
        ts_text = [s.isoformat() for s in stamps]
        with (
            conn.cursor() as cur,
            cur.copy("COPY readings (meter_id, point_id, ts, value) FROM STDIN") as copy,
        ):
            for meter_id, point_id in rows:
                buf = io.StringIO()
                base = 50.0 + point_id % 17
                for k in range(per_point):
                    buf.write(
                        f"{meter_id}\t{point_id}\t{ts_text[k]}\t{base + (k % 1440) / 60.0:.3f}\n"
                    )
                copy.write(buf.getvalue())
        conn.commit()
        logger.info(
            "copied %d readings in %.0f s", len(rows) * per_point, time.perf_counter() - begun
        )
        conn.execute("CREATE INDEX readings_point_ts ON readings (point_id, ts)")
        conn.execute("CREATE INDEX readings_ts_brin ON readings USING brin (ts)")
        conn.execute(
            "INSERT INTO upload_queue (id, meter_id)"
            " SELECT id, meter_id FROM readings WHERE ts >= %s",
            (synced_before,),
        )
        conn.execute(f"ALTER TABLE readings ENABLE TRIGGER {QUEUE_TRIGGER}")
        conn.commit()
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE readings")
        return len(rows) * per_point


def timed(
    label: str, n: int, call: Callable[[], object], before: Callable[[], object] | None = None
) -> dict[str, float]:
    call()  # warm: pool, plans, caches
    samples = []
    for _ in range(n):
        if before is not None:
            before()
        began = time.perf_counter()
        call()
        samples.append((time.perf_counter() - began) * 1000)
    samples.sort()
    result = {
        "p50": statistics.median(samples),
        "p95": samples[int(0.95 * (len(samples) - 1))],
        "max": samples[-1],
    }
    logger.info("%-46s p50 %6.1f ms  p95 %6.1f ms  max %6.1f ms", label, *result.values())
    return result


def log_in(session: requests.Session, base: str) -> None:
    page = session.get(base + "/login", timeout=10).text
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match, "no CSRF token on the login page"
    answer = session.post(
        base + "/login",
        data={"csrf_token": match.group(1), "password": PASSWORD, "next": "/"},
        timeout=10,
        allow_redirects=False,
    )
    assert answer.status_code == 302, f"login failed: {answer.status_code}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.localui", description=__doc__)
    parser.add_argument("--meters", type=int, default=100)
    parser.add_argument("--points", type=int, default=10, choices=range(1, 11))
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument(
        "--readings", type=int, help="this many readings in all, one a minute (instead of --days)"
    )
    parser.add_argument("--requests", type=int, default=200, help="timed requests per page")
    parser.add_argument(
        "--unsynced-minutes",
        type=int,
        default=10,
        help="the newest readings not yet uploaded (a healthy site: a cycle or a few)",
    )
    parser.add_argument("--database-url", help="reuse a populated edge database")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    admin = harness.admin_postgres_url()
    created = None
    if args.database_url:
        url = args.database_url
    else:
        created = harness.create_database(admin, prefix="meterit_bench_localui")
        url = harness.with_database(admin, created)
        db.migrate(url, harness.EDGE_MIGRATIONS)
        began = time.perf_counter()
        per_point = (
            args.readings // (args.meters * args.points) if args.readings else args.days * 1440
        )
        total = populate(url, args.meters, args.points, per_point, args.unsynced_minutes)
        logger.info(
            "database ready: %d readings in %.0f s (%s)", total, time.perf_counter() - began, url
        )

    tmp = Path(tempfile.mkdtemp(prefix="meterit-bench-localui-"))
    hash_file = tmp / "web-password.argon2"
    password.set_password(hash_file, PASSWORD)
    settings = ApplianceSettings(database_url=url, redis_url=harness.LOCAL_REDIS)
    port = free_tcp_port()
    env = settings_env(
        settings,
        tmp,
        METERIT_WEB_BIND=f"127.0.0.1:{port}",
        METERIT_WEB_PASSWORD_HASH_FILE=str(hash_file),
        METERIT_WEB_INITIAL_PASSWORD_FILE=str(tmp / "none"),
    )
    web = ApplianceProcess(["web"], env, tmp / "web.log")
    base = f"http://127.0.0.1:{port}"
    try:

        def up() -> bool:
            try:
                return requests.get(base + "/health", timeout=2).ok
            except requests.RequestException:
                return False

        wait_until(up, 30, "the web UI")
        session = requests.Session()
        log_in(session, base)
        with psycopg.connect(url, autocommit=True) as conn:
            meters = conn.execute("SELECT count(*) FROM meters").fetchone()[0]  # type: ignore[index]
            readings = conn.execute(
                "SELECT reltuples::bigint FROM pg_class WHERE relname = 'readings'"
            ).fetchone()[0]  # type: ignore[index]
        logger.info(
            "%d meters, ~%d readings; %d timed requests each", meters, readings, args.requests
        )

        def get(path: str) -> Callable[[], object]:
            def call() -> object:
                answer = session.get(base + path, timeout=10)
                assert answer.status_code == 200, (path, answer.status_code)
                return answer

            return call

        n = args.requests
        stamp = psycopg.connect(url, autocommit=True)
        queued = stamp.execute("SELECT coalesce(max(id), 0) FROM upload_queue").fetchone()
        assert queued is not None
        queued_before = int(queued[0])  # the backlog of the start: the cycles' readings are above

        def new_cycle() -> object:
            """A collector commit: a reading of every active point and the meters' status.
            Its readings count as uploaded at once, so the backlog stays that of the start."""
            with stamp.transaction():
                stamp.execute(
                    "INSERT INTO readings (meter_id, point_id, ts, value)"
                    " SELECT meter_id, id, clock_timestamp(), random()"
                    " FROM meter_points WHERE active"
                )
                stamp.execute("DELETE FROM upload_queue WHERE id > %s", (queued_before,))
                return stamp.execute("UPDATE meter_status SET updated_at = clock_timestamp()")

        page = timed("GET / (dashboard page), after each poll cycle", n, get("/"), new_cycle)
        poll = timed(
            "GET /api/local/meters (refresh), after each cycle",
            n,
            get("/api/local/meters"),
            new_cycle,
        )
        steady = timed("GET /api/local/meters (refresh), same cycle", n, get("/api/local/meters"))
        stamp.close()
        chart = timed(
            "GET /api/local/series (24 h chart of a card)",
            n,
            get("/api/local/series?meter=meter-042&point=power_kw&hours=24&buckets=144"),
        )
        with psycopg.connect(url, autocommit=True) as conn:

            def bare() -> object:
                # on one connection, as the page now reads them (before, the status opened its own)
                return service.get_meter_status(settings, conn=conn), queries.latest_values(conn)

            ref = timed("reference: bare SQL of the dashboard", n, bare)
            ref_values = timed(
                "reference: latest values query alone", n, lambda: queries.latest_values(conn)
            )
        logger.info("")
        logger.info(
            "dashboard page p95 %.1f ms (target < 100 ms): %s",
            page["p95"],
            "OK" if page["p95"] < 100 else "MISSED",
        )
        logger.info(
            "dashboard refresh p95 %.1f ms (%.1f ms between poll cycles)",
            poll["p95"],
            steady["p95"],
        )
        logger.info(
            "HTTP overhead over the bare SQL at p95: page %.1fx, refresh %.1fx (latest values alone %.1f ms)",
            page["p95"] / ref["p95"],
            poll["p95"] / ref["p95"],
            ref_values["p95"],
        )
        logger.info("chart p95 %.1f ms", chart["p95"])
        logger.info("/proc/loadavg: %s", Path("/proc/loadavg").read_text().strip())
        return 0 if page["p95"] < 100 else 1
    finally:
        web.stop()
        if created and not args.keep:
            harness.drop_database(admin, created)
        elif created:
            logger.info("kept %s", url)


if __name__ == "__main__":
    raise SystemExit(main())
