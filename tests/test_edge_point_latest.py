"""The appliance's ``point_latest`` (what the local dashboard reads) equals the newest reading a
scan of ``readings`` gives, after everything that writes or deletes readings: the collector's
cycles arriving out of order, trend-log backfill, retention, quarantine, and a rolled back cycle."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from appliance.sync import ledger, retention
from web import queries

SCAN = """SELECT DISTINCT ON (point_id) point_id, id, ts, value FROM readings
          ORDER BY point_id, ts DESC, id DESC"""
SUMMARY = "SELECT point_id, reading_id, ts, value FROM point_latest ORDER BY point_id"


def meters(
    conn: psycopg.Connection[Any], count: int, points: int, prefix: str = "m"
) -> list[tuple[int, int]]:
    """(meter id, point id) of ``count`` new meters of ``points`` points each."""
    out = []
    for m in range(count):
        meter = conn.execute(
            "INSERT INTO meters (external_id, address) VALUES (%s, %s) RETURNING id",
            (f"{prefix}{m}", f"10.0.0.{m + 1}"),
        ).fetchone()
        assert meter is not None
        for p in range(points):
            point = conn.execute(
                "INSERT INTO meter_points (meter_id, name, object_type, object_instance)"
                " VALUES (%s, %s, 'analog-input', %s) RETURNING id",
                (meter[0], f"p{p}", p + 1),
            ).fetchone()
            assert point is not None
            out.append((int(meter[0]), int(point[0])))
    return out


def copy_cycle(
    conn: psycopg.Connection[Any], points: list[tuple[int, int]], ts: datetime, value: float
) -> None:
    """One cycle as the collector writes it: a COPY of every point's reading."""
    with (
        conn.cursor() as cur,
        cur.copy("COPY readings (meter_id, point_id, ts, value) FROM STDIN") as copy,
    ):
        for meter_id, point_id in points:
            copy.write_row((meter_id, point_id, ts, value + point_id))


def summary_is_scan(conn: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
    summary = conn.execute(SUMMARY).fetchall()
    assert summary == conn.execute(SCAN).fetchall()
    return summary


def test_point_latest_equals_a_scan_after_every_kind_of_write(edge_db_url: str) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    rng = random.Random(21)
    with psycopg.connect(edge_db_url, autocommit=True) as conn:
        points = meters(conn, 3, 4)
        # cycles committed out of order (a slow cycle's commit after a faster later one), and
        # two cycles stamped alike: the later reading wins the tie
        offsets = list(range(0, 600, 60))
        rng.shuffle(offsets)
        for k, offset in enumerate(offsets):
            copy_cycle(conn, points, now - timedelta(days=10) + timedelta(seconds=offset), k)
        copy_cycle(conn, points, now - timedelta(days=10) + timedelta(seconds=540), 99)
        latest = summary_is_scan(conn)
        assert {row[3] - row[0] for row in latest} == {99}
        # backfill of older readings leaves the newest alone; a point's first readings count
        copy_cycle(conn, points, now - timedelta(days=12), -5)
        extra = meters(conn, 1, 2, prefix="new")
        copy_cycle(conn, extra, now - timedelta(days=11), 7)
        assert summary_is_scan(conn)[: len(latest)] == latest
        # a cycle rolled back leaves nothing behind
        try:
            with conn.transaction():
                copy_cycle(conn, points, now, 1e6)
                raise psycopg.Rollback()
        finally:
            assert summary_is_scan(conn)[: len(latest)] == latest
        # quarantine removes the newest reading of a point: the one before takes its place
        newest = conn.execute(
            "SELECT id, meter_id, point_id, ts, value FROM readings ORDER BY ts DESC, id DESC"
        ).fetchone()
        assert newest is not None
        row = ledger.BatchRow(*newest, meter=None, point=None, unit=None)
        with conn.transaction():
            ledger.quarantine(conn, [(row, "test: a bad value")])
        # (its tie at the same timestamp, here)
        replaced = {r[0]: r[1:] for r in summary_is_scan(conn)}
        assert replaced[row.point_id][0] != row.id and replaced[row.point_id][2] != row.value
        # retention prunes synced readings older than a week: every reading here, once synced
        conn.execute("DELETE FROM upload_queue")
        conn.autocommit = False
        assert retention.commit_prune(conn, 7) > 0
        assert summary_is_scan(conn) == []
        assert all(v["value"] is None for vs in queries.latest_values(conn).values() for v in vs)
