"""Alert evaluation benchmark: every rule over 10,000 sites x 10 meters.

Run with ``.venv/bin/python -m bench.alerts`` (``--help`` for sizes). It makes a fresh central
database on the PostgreSQL the tests use (``tests/harness.py``) and fills the state the rules
read, in SQL: sites with their latest heartbeat, ``site_health``, ``meter_health``, data points
with ``point_latest`` (what ingest maintains), one tenant with the default rules plus a value
threshold on ``power_kw`` across every site. A little of the fleet is in trouble (1 % of sites
silent, 0.5 % of meters unreachable, 1 % of power points above the threshold, 0.2 % of points
without new data), as on a normal bad day.

It times ``central.alerts.evaluate.run`` — conditions, state machine, notifications, exactly
what the worker runs every 30 s — first when every alert is new (all of them start firing and
are e-mailed), then in the steady state (nothing changed). The reference, in the same run, is a
bare SQL query counting the same trouble from the same tables. Target (DESIGN.md): < 2 s.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta

import psycopg
from psycopg.types.json import Jsonb

from central.alerts import evaluate, rules
from central.settings import CentralSettings
from common import db
from tests import harness

logger = logging.getLogger("bench.alerts")

POINTS = ["energy_kwh", "power_kw", "voltage_l1_v", "voltage_l2_v", "voltage_l3_v",
          "current_l1_a", "current_l2_a", "current_l3_a", "power_factor", "frequency_hz"]  # fmt: skip

REFERENCE_SQL = """
SELECT (SELECT count(*) FROM sites WHERE last_heartbeat_at < %(now)s - interval '10 minutes'),
       (SELECT count(*) FROM site_health WHERE backlog > 10000),
       (SELECT count(*) FROM meter_health
        WHERE state = 'unreachable' AND since <= %(now)s - interval '5 minutes'),
       (SELECT count(*) FROM point_latest WHERE ts < %(now)s - interval '30 minutes'),
       (SELECT count(*) FROM point_latest pl JOIN meter_points p ON p.id = pl.point_id
        WHERE p.name = 'power_kw' AND pl.value > 500)
"""


def populate(url: str, n_sites: int, n_meters: int, n_points: int, now: datetime) -> None:
    points = POINTS[:n_points]
    with psycopg.connect(url) as conn:
        # bulk load: the config-version triggers would update the site once per row
        conn.execute("SET session_replication_role = replica")
        tenant = harness.scalar(conn, "INSERT INTO tenants (name) VALUES ('bench') RETURNING id")
        rules.create_defaults(conn, tenant)
        conn.execute(
            """INSERT INTO alert_rules (tenant_id, name, kind, severity, params)
               VALUES (%s, 'Power high', 'value_threshold', 'warning', %s)""",
            (tenant, Jsonb({"point": "power_kw", "op": ">", "set": 500, "clear": 480})),
        )
        conn.execute(
            """INSERT INTO users (tenant_id, email, password_hash, role)
               VALUES (%s, 'ops@bench.example', 'x', 'admin')""",
            (tenant,),
        )
        # 1 %% of the sites have been silent for an hour, the rest beat a minute ago
        conn.execute(
            """INSERT INTO sites (tenant_id, name, last_heartbeat_at)
               SELECT %s, 'site-' || n, CASE WHEN n %% 100 = 0 THEN %s - interval '1 hour'
                                        ELSE %s - interval '1 minute' END
               FROM generate_series(1, %s) n""",
            (tenant, now, now, n_sites),
        )
        conn.execute(
            """INSERT INTO site_health (site_id, reported_at, backlog, oldest_unsynced_age_s,
                      dropped_total)
               SELECT id, %s, CASE WHEN id %% 500 = 0 THEN 50000 ELSE 10 END, 30, 0 FROM sites""",
            (now - timedelta(minutes=1),),
        )
        conn.execute(
            """INSERT INTO meters (site_id, external_id, address, device_instance)
               SELECT s.id, 'm' || k, '10.0.0.' || k, k FROM sites s, generate_series(1, %s) k""",
            (n_meters,),
        )
        conn.execute(
            """INSERT INTO meter_health (meter_id, site_id, state, since, reported_at)
               SELECT id, site_id, CASE WHEN id %% 200 = 0 THEN 'unreachable' ELSE 'reachable' END,
                      %s - interval '1 hour', %s FROM meters""",
            (now, now),
        )
        conn.execute(
            """INSERT INTO meter_points (meter_id, name, object_type, object_instance, unit)
               SELECT m.id, p.name, 'analog-input', p.n, ''
               FROM meters m, unnest(%s::text[]) WITH ORDINALITY AS p (name, n)""",
            (points,),
        )
        conn.execute(
            """INSERT INTO point_latest (point_id, ts, value)
               SELECT p.id,
                      CASE WHEN p.id %% 500 = 7 THEN %s - interval '2 hours'
                           ELSE %s - interval '1 minute' END,
                      CASE WHEN p.name = 'power_kw' AND p.meter_id %% 100 = 3 THEN 700 ELSE 100 END
               FROM meter_points p""",
            (now, now),
        )
        conn.execute("SET session_replication_role = origin")
        conn.commit()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")


def time_it(fn: object, runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()  # type: ignore[operator]
        out.append(time.perf_counter() - started)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.alerts", description=__doc__)
    parser.add_argument("--sites", type=int, default=10000)
    parser.add_argument("--meters", type=int, default=10, help="meters per site")
    parser.add_argument("--points", type=int, default=10, help="data points per meter (<= 10)")
    parser.add_argument("--runs", type=int, default=5, help="steady-state evaluations timed")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")

    admin = harness.admin_postgres_url()
    name = harness.create_database(admin, prefix="meterit_bench_alerts")
    url = harness.with_database(admin, name)
    now = datetime.now(UTC)
    try:
        db.migrate(url, harness.CENTRAL_MIGRATIONS)
        started = time.perf_counter()
        populate(url, args.sites, args.meters, args.points, now)
        print(
            f"state: {args.sites:,} sites x {args.meters} meters x {args.points} points "
            f"filled in {time.perf_counter() - started:.0f} s"
        )
        settings = CentralSettings(database_url=url)
        with psycopg.connect(url) as conn:
            clock = [now]

            def evaluation() -> None:
                clock[0] += timedelta(seconds=30)
                outcome = evaluate.run(conn, settings, clock[0])
                assert outcome.ran

            first = time_it(evaluation, 1)[0]
            fired = harness.scalar(conn, "SELECT count(*) FROM alert_instances")
            steady = time_it(evaluation, args.runs)
            mails = harness.scalar(conn, "SELECT count(*) FROM mail_messages")

            def reference() -> None:
                conn.execute(REFERENCE_SQL, {"now": clock[0]}).fetchone()

            bare = time_it(reference, args.runs)
        evaluation_s = statistics.median(steady)
        reference_s = statistics.median(bare)
        print(f"first evaluation (all {fired:,} alerts new): {first:.2f} s")
        print(
            f"steady evaluation, median of {args.runs}: {evaluation_s:.3f} s "
            f"(max {max(steady):.3f} s; the first of them queued the {mails} grouped e-mails); "
            "target < 2 s"
        )
        print(f"reference, bare SQL counting the same state: {reference_s:.3f} s")
        print(f"ratio evaluation / reference: {evaluation_s / reference_s:.1f}x")
        print("load average: " + " ".join(f"{x:.2f}" for x in os.getloadavg()))
        if args.keep:
            print(f"kept: {url}")
    finally:
        if not args.keep:
            harness.drop_database(admin, name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
