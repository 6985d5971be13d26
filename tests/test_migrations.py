"""Both schemas apply, roll back and re-apply cleanly; the natural key refuses duplicates."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime

import psycopg
import pytest

from common import db
from tests import harness
from tests.harness import scalar


def tables(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename NOT LIKE '\\_yoyo%' AND tablename NOT LIKE 'yoyo%'"
        ).fetchall()
    return {r[0] for r in rows}


@pytest.mark.parametrize(
    ("migrations", "expected"),
    [
        (
            harness.EDGE_MIGRATIONS,
            {
                "meters",
                "readings",
                "quarantine",
                "sync_log",
                "meter_sync_log",
                "appliance_state",
                "dropped_readings",
                "meter_status",
            },
        ),
        (
            harness.CENTRAL_MIGRATIONS,
            {
                "tenants",
                "users",
                "sites",
                "api_keys",
                "meters",
                "readings",
                "readings_hourly",
                "alert_rules",
                "alert_instances",
                "alert_silences",
                "maintenance_windows",
                "point_latest",
                "point_days",
                "site_health",
                "meter_health",
                "audit_log",
                "mail_messages",
                "mail_attachments",
                "mail_outbox",
                "mcp_tokens",
            },
        ),
    ],
    ids=["edge", "central"],
)
def test_schema_applies_rolls_back_and_reapplies(empty_db_url: str, migrations, expected) -> None:
    assert db.migrate(empty_db_url, migrations) >= 1
    assert expected <= tables(empty_db_url)
    assert db.migrate(empty_db_url, migrations) == 0, "applying twice must be a no-op"
    assert db.pending(empty_db_url, migrations) == []

    db.migrate(empty_db_url, migrations, rollback=True)
    assert not expected & tables(empty_db_url)

    assert db.migrate(empty_db_url, migrations) >= 1
    assert expected <= tables(empty_db_url)


def test_central_readings_refuse_duplicate_natural_key(central_db_url: str) -> None:
    ts = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
    with psycopg.connect(central_db_url) as conn:
        tenant = scalar(conn, "INSERT INTO tenants (name) VALUES ('t') RETURNING id")
        site = scalar(
            conn, "INSERT INTO sites (tenant_id, name) VALUES (%s, 's') RETURNING id", (tenant,)
        )
        meter = scalar(
            conn,
            "INSERT INTO meters (site_id, external_id) VALUES (%s, 'm1') RETURNING id",
            (site,),
        )
        point = scalar(
            conn,
            "INSERT INTO meter_points (meter_id, name, object_type, object_instance) VALUES (%s, 'kwh', 'analog-input', 1) RETURNING id",
            (meter,),
        )
        conn.execute("SELECT ensure_readings_partitions(%s, %s)", (ts, ts))
        conn.execute("INSERT INTO readings (point_id, ts, value) VALUES (%s, %s, 1.0)", (point, ts))
        conn.commit()
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute(
                "INSERT INTO readings (point_id, ts, value) VALUES (%s, %s, 2.0)", (point, ts)
            )
        conn.rollback()
        # the same instant written in another zone is the same natural key
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute(
                "INSERT INTO readings (point_id, ts, value) VALUES (%s, '2026-11-23 11:00:00+01', 2.0)",
                (point,),
            )
        conn.rollback()
        partitions = conn.execute(
            "SELECT inhrelid::regclass::text FROM pg_inherits WHERE inhparent = 'readings'::regclass"
        ).fetchall()
    assert partitions == [("readings_2026_11",)]


def test_timestamps_are_timestamptz_everywhere(edge_db_url: str, central_db_url: str) -> None:
    for url in (edge_db_url, central_db_url):
        with psycopg.connect(url) as conn:
            naive = conn.execute(
                "SELECT table_name, column_name FROM information_schema.columns "
                "WHERE table_schema = 'public' AND data_type = 'timestamp without time zone' "
                "AND table_name NOT LIKE '%yoyo%'"
            ).fetchall()
        assert naive == []


def test_migrate_command_applies_then_reports_nothing_to_do(empty_db_url: str) -> None:
    def run(*args: str) -> str:
        out = subprocess.run(
            [sys.executable, "-m", "appliance", "migrate", "--database-url", empty_db_url, *args],
            capture_output=True,
            text=True,
            check=True,
            env={"PATH": "/usr/bin:/bin"},
        )
        return out.stdout

    edge_migrations = len(db.pending(empty_db_url, harness.EDGE_MIGRATIONS))
    assert edge_migrations >= 1
    assert f"applied {edge_migrations} migration(s)" in run()
    assert "applied 0 migration(s)" in run()
    assert f"rolled back {edge_migrations} migration(s)" in run("--rollback")


def test_edge_upgrade_moves_in_flight_leases_into_their_batch(empty_db_url: str) -> None:
    """0002 moves the lease from each reading into its batch; its rollback moves it back."""
    after_0001 = len(db.pending(empty_db_url, harness.EDGE_MIGRATIONS)) - 1
    db.migrate(empty_db_url, harness.EDGE_MIGRATIONS)
    db.migrate(empty_db_url, harness.EDGE_MIGRATIONS, rollback=True, steps=after_0001)
    with psycopg.connect(empty_db_url) as conn:
        conn.execute(
            "INSERT INTO readings (meter_id, point_id, ts, value)"
            " SELECT 1, 1, now() - g * interval '1 minute', g FROM generate_series(1, 5) g"
        )
        batch = scalar(
            conn,
            "INSERT INTO upload_batches (id, first_id, last_id, row_count, leased_until)"
            " VALUES (gen_random_uuid(), 2, 4, 2, now()) RETURNING id",
        )
        conn.execute("UPDATE readings SET batch_id = %s WHERE id IN (2, 4)", (batch,))
    assert db.migrate(empty_db_url, harness.EDGE_MIGRATIONS) == after_0001
    with psycopg.connect(empty_db_url) as conn:
        assert scalar(conn, "SELECT reading_ids FROM upload_batches") == [2, 4]
    db.migrate(empty_db_url, harness.EDGE_MIGRATIONS, rollback=True, steps=after_0001)
    with psycopg.connect(empty_db_url) as conn:
        held = conn.execute("SELECT id FROM readings WHERE batch_id IS NOT NULL ORDER BY id")
        assert [r[0] for r in held] == [2, 4]


def test_tenants_from_before_alerting_get_the_default_rules(empty_db_url: str, tmp_path) -> None:
    import shutil

    from central.alerts import rules

    earlier = tmp_path / "migrations"
    earlier.mkdir()
    for path in harness.CENTRAL_MIGRATIONS.glob("000[123].*.sql"):
        shutil.copy(path, earlier / path.name)
    db.migrate(empty_db_url, earlier)
    with psycopg.connect(empty_db_url) as conn:
        conn.execute("INSERT INTO tenants (name) VALUES ('old tenant')")
    db.migrate(empty_db_url, harness.CENTRAL_MIGRATIONS)
    with psycopg.connect(empty_db_url) as conn:
        made = conn.execute(
            "SELECT name, kind, severity, params FROM alert_rules ORDER BY id"
        ).fetchall()
    assert made == [(n, k, s, p) for n, k, s, p in rules.DEFAULTS]


def test_edge_meter_quirks_roll_back_to_states_the_old_code_knows(edge_db_url: str) -> None:
    """0003 adds the 'no-values' state and the learned RPM refusal; its rollback turns a
    no-values meter into 'unreachable' (it yields nothing) and drops the column."""
    with psycopg.connect(edge_db_url) as conn:
        meter = scalar(
            conn,
            "INSERT INTO meters (external_id, name, device_instance) VALUES ('m1', 'M1', 1) RETURNING id",
        )
        conn.execute(
            "INSERT INTO meter_status (meter_id, state, rpm_refused_at) VALUES (%s, 'no-values', now())",
            (meter,),
        )
    since_0003 = edge_migrations_from("0003")
    db.migrate(edge_db_url, harness.EDGE_MIGRATIONS, rollback=True, steps=since_0003)
    with psycopg.connect(edge_db_url) as conn:
        assert scalar(conn, "SELECT state FROM meter_status") == "unreachable"
        columns = conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'meter_status'"
        ).fetchall()
        assert ("rpm_refused_at",) not in columns
    assert db.migrate(edge_db_url, harness.EDGE_MIGRATIONS) == since_0003


def test_edge_backfill_rolls_back_without_the_marked_readings_column(edge_db_url: str) -> None:
    """0004 marks backfilled readings and keeps the gaps to fill; its rollback keeps every
    reading (backfilled ones become plain readings) and drops the gaps."""
    with psycopg.connect(edge_db_url) as conn:
        meter = scalar(
            conn,
            "INSERT INTO meters (external_id, name, device_instance) VALUES ('m1', 'M1', 1) RETURNING id",
        )
        conn.execute(
            "INSERT INTO readings (meter_id, point_id, ts, value, backfilled)"
            " VALUES (%s, 1, now() - interval '1 hour', 1.0, true), (%s, 1, now(), 2.0, false)",
            (meter, meter),
        )
        conn.execute(
            "INSERT INTO backfill_gaps (meter_id, since, until)"
            " VALUES (%s, now() - interval '2 hours', now())",
            (meter,),
        )
    since_0004 = edge_migrations_from("0004")
    db.migrate(edge_db_url, harness.EDGE_MIGRATIONS, rollback=True, steps=since_0004)
    with psycopg.connect(edge_db_url) as conn:
        assert scalar(conn, "SELECT count(*) FROM readings") == 2
        assert scalar(conn, "SELECT to_regclass('backfill_gaps') IS NULL") is True
    assert db.migrate(edge_db_url, harness.EDGE_MIGRATIONS) == since_0004


def edge_migrations_from(first: str) -> int:
    """How many edge migrations there are from ``first`` (e.g. "0003") on."""
    return sum(
        1
        for p in harness.EDGE_MIGRATIONS.glob("0*.sql")
        if not p.name.endswith(".rollback.sql") and p.name >= first
    )


def test_edge_0007_drops_the_lease_deadline_and_the_stale_state_and_rolls_back(
    empty_db_url: str,
) -> None:
    steps = edge_migrations_from("0007")
    db.migrate(empty_db_url, harness.EDGE_MIGRATIONS)
    with psycopg.connect(empty_db_url) as conn:
        conn.execute(
            "INSERT INTO upload_batches (id, first_id, last_id, row_count, reading_ids)"
            " VALUES (gen_random_uuid(), 2, 4, 2, '{2,4}')"
        )
        meter = scalar(
            conn, "INSERT INTO meters (external_id, device_instance) VALUES ('m', 1) RETURNING id"
        )
        conn.commit()
        with pytest.raises(psycopg.errors.CheckViolation):
            conn.execute(
                "INSERT INTO meter_status (meter_id, state) VALUES (%s, 'stale')", (meter,)
            )
    db.migrate(empty_db_url, harness.EDGE_MIGRATIONS, rollback=True, steps=steps)
    with psycopg.connect(empty_db_url) as conn:
        # the batch in flight survives, with a deadline the old code can read
        assert scalar(conn, "SELECT leased_until > now() FROM upload_batches") is True
        conn.execute("INSERT INTO meter_status (meter_id, state) VALUES (%s, 'stale')", (meter,))
