"""The appliance's ``upload_queue`` (what the upload drains) holds exactly the readings not yet
synced, after everything that writes or deletes readings: the collector's cycles, trend-log
backfill, a rolled back cycle, settlement, quarantine, the buffer budget, retention and a
truncate; and migration 0010 moves an existing backlog into it and back out on rollback."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

from appliance.sync import ledger, retention
from common import db
from tests import harness
from tests.harness import scalar
from tests.test_edge_point_latest import copy_cycle, meters

QUEUE = "SELECT id, meter_id FROM upload_queue ORDER BY id"


def queued(conn: psycopg.Connection[Any]) -> list[tuple[int, int]]:
    return [(int(i), int(m)) for i, m in conn.execute(QUEUE)]


def readings_above(conn: psycopg.Connection[Any], after: int) -> list[tuple[int, int]]:
    rows = conn.execute(
        "SELECT id, meter_id FROM readings WHERE id > %s ORDER BY id", (after,)
    ).fetchall()
    return [(int(i), int(m)) for i, m in rows]


def test_the_queue_is_the_unsynced_readings_after_every_kind_of_write(edge_db_url: str) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    with psycopg.connect(edge_db_url, autocommit=True) as conn:
        points = meters(conn, 3, 4)
        # the collector's cycles and a trend-log backfill of older readings: every one queued
        for k in range(3):
            copy_cycle(conn, points, now - timedelta(days=10) + timedelta(minutes=k), k)
        copy_cycle(conn, points, now - timedelta(days=12), -5)
        assert queued(conn) == readings_above(conn, 0) and len(queued(conn)) == 4 * 12
        # a cycle rolled back queues nothing
        try:
            with conn.transaction():
                copy_cycle(conn, points, now, 1e6)
                raise psycopg.Rollback()
        finally:
            assert queued(conn) == readings_above(conn, 0)
        # settling a batch takes its readings out of the queue and leaves them in readings
        conn.autocommit = False
        batch, _ = ledger.commit_claim(conn, 12)
        assert batch is not None and len(batch.rows) == 12
        settled = {r.id for r in batch.rows}
        ledger.commit_settlement(
            conn, batch, now, accepted=11, duplicates=0, rejected={0: "test: central said no"}
        )
        left = queued(conn)
        assert settled.isdisjoint(i for i, _ in left) and len(left) == 36
        assert scalar(conn, "SELECT count(*) FROM readings") == 47  # the rejected one quarantined
        # the buffer budget drops the oldest queued readings, from readings and the queue alike
        assert retention.commit_budget(conn, 30) == 6
        left = queued(conn)
        assert len(left) == 30 and left == [
            r for r in readings_above(conn, 0) if r[0] not in settled
        ]
        # retention prunes the 11 synced readings (all older than a week), never a queued one
        assert retention.commit_prune(conn, 7) == 11
        assert queued(conn) == left == readings_above(conn, 0)
        conn.execute("TRUNCATE readings")
        conn.commit()
        assert queued(conn) == []


def test_migration_0010_moves_the_backlog_into_the_queue_and_back(
    empty_db_url: str, tmp_path: Path
) -> None:
    for path in harness.EDGE_MIGRATIONS.glob("*.sql"):
        if path.name < "0010":
            shutil.copy(path, tmp_path / path.name)
    db.migrate(empty_db_url, tmp_path)  # the schema before the queue
    now = datetime.now(UTC)
    with psycopg.connect(empty_db_url) as conn:
        points = meters(conn, 2, 3)
        for k in range(4):
            copy_cycle(conn, points, now - timedelta(minutes=k), k)
        conn.execute(
            "UPDATE readings SET synced_at = now() WHERE id IN"
            " (SELECT id FROM readings ORDER BY id LIMIT 10)"
        )
        unsynced = conn.execute(
            "SELECT id, meter_id FROM readings WHERE synced_at IS NULL ORDER BY id"
        ).fetchall()
    assert db.migrate(empty_db_url, harness.EDGE_MIGRATIONS) == 1
    with psycopg.connect(empty_db_url) as conn:
        assert queued(conn) == unsynced and len(unsynced) == 14
        assert (
            scalar(
                conn,
                "SELECT count(*) FROM information_schema.columns"
                " WHERE table_name = 'readings' AND column_name = 'synced_at'",
            )
            == 0
        )
        conn.execute("DELETE FROM upload_queue WHERE id = %s", (unsynced[0][0],))  # one more synced
    assert db.migrate(empty_db_url, harness.EDGE_MIGRATIONS, rollback=True, steps=1) == 1
    with psycopg.connect(empty_db_url) as conn:
        assert (
            conn.execute(
                "SELECT id, meter_id FROM readings WHERE synced_at IS NULL ORDER BY id"
            ).fetchall()
            == unsynced[1:]
        )
        assert scalar(conn, "SELECT count(*) FROM readings WHERE synced_at IS NOT NULL") == 11
