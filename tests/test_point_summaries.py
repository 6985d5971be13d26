"""The summaries the dashboards read (``point_latest``, ``point_days``) stay equal to what a
scan of the readings gives, whatever order batches arrive in, replayed or rolled back, and the
fleet's energy figures computed from them equal the same figures computed from a scan."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import psycopg
import pytest
from psycopg_pool import ConnectionPool

from central import fleet, ingest, meters
from central.connectivity import Thresholds
from central.database import standalone_pool
from central.keys import SiteIdentity
from common.timestamps import format_ts
from tests.alert_helpers import Fleet

POINTS = [("energy_kwh", "kWh"), ("power_kw", "kW"), ("voltage_v", "V")]

# what the summaries must equal: the first and last reading of each point and UTC day, and the
# newest reading of each point, straight from the readings table
SCAN_DAYS = """
SELECT f.point_id, f.day, f.ts, f.value, l.ts, l.value
FROM (SELECT DISTINCT ON (point_id, (ts AT TIME ZONE 'UTC')::date)
             point_id, (ts AT TIME ZONE 'UTC')::date AS day, ts, value
      FROM readings ORDER BY point_id, (ts AT TIME ZONE 'UTC')::date, ts) f
JOIN (SELECT DISTINCT ON (point_id, (ts AT TIME ZONE 'UTC')::date)
             point_id, (ts AT TIME ZONE 'UTC')::date AS day, ts, value
      FROM readings ORDER BY point_id, (ts AT TIME ZONE 'UTC')::date, ts DESC) l
  USING (point_id, day)
ORDER BY 1, 2
"""
SUMMARY_DAYS = """SELECT point_id, day, first_ts, first_value, last_ts, last_value
                  FROM point_days ORDER BY 1, 2"""
SCAN_LATEST = "SELECT DISTINCT ON (point_id) point_id, ts, value FROM readings ORDER BY 1, 2 DESC"
SUMMARY_LATEST = "SELECT point_id, ts, value FROM point_latest ORDER BY 1"


@pytest.fixture
def site(central_db_url: str) -> Iterator[tuple[Fleet, SiteIdentity, ConnectionPool[Any]]]:
    """A tenant with one site of two meters (energy, power and voltage points) and a pool."""
    plant = Fleet(central_db_url).setup()
    site_id = plant.site("Plant")
    with plant.tx() as conn:
        for n in range(2):
            body = {
                "external_id": f"m{n}",
                "address": f"10.0.0.{n + 1}",
                "points": [
                    {"name": name, "object": f"analog-input,{i + 1}", "unit": unit}
                    for i, (name, unit) in enumerate(POINTS)
                ],
            }
            meters.create_meter(conn, site_id, plant.tenant_id, meters.parse_meter(body), "cli")
        version = conn.execute("SELECT config_version FROM sites WHERE id = %s", (site_id,))
        row = version.fetchone()
        conn.commit()
    identity = SiteIdentity(
        site_id, "Plant", plant.tenant_id, "ACME", 0, "test", int(row[0]) if row else 0, None
    )
    with standalone_pool(central_db_url, "test-point-summaries", 2) as pool:
        yield plant, identity, pool


def counter_readings(now: datetime, days: int, step: timedelta) -> list[dict[str, Any]]:
    """Every point of both meters from ``days`` ago to now: rising counters, varying power."""
    rng = random.Random(21)
    items = []
    start = now - timedelta(days=days)
    k = 0
    while start + k * step <= now:
        ts = format_ts(start + k * step)
        for meter in ("m0", "m1"):
            items.append({"meter": meter, "point": "energy_kwh", "ts": ts, "value": 500.0 + k * 2})
            items.append({"meter": meter, "point": "power_kw", "ts": ts, "value": rng.random()})
            items.append({"meter": meter, "point": "voltage_v", "ts": ts, "value": 230 + k % 7})
        k += 1
    return items


def ingest_shuffled(
    pool: ConnectionPool[Any], identity: SiteIdentity, items: list[dict[str, Any]]
) -> tuple[int, int]:
    """The items in shuffled batches (a backlog arriving out of order), each batch sent twice
    under two keys and one of them replayed: (accepted, duplicates) over all of them."""
    rng = random.Random(7)
    shuffled = items[:]
    rng.shuffle(shuffled)
    ingestor = ingest.Ingestor()
    accepted = duplicates = 0
    with pool.connection() as conn:
        conn.autocommit = True  # as the sync API's request connection (central.database)
        try:
            for n in range(0, len(shuffled), 97):
                batch = shuffled[n : n + 97]
                for key in (f"b{n}", f"again-{n}", f"b{n}"):
                    answer, replayed = ingestor.write_batch(conn, identity, key, batch)
                    assert not answer["rejected"], answer["rejected"][:3]
                    if replayed:
                        continue
                    accepted += answer["accepted"]
                    duplicates += answer["duplicates"]
        finally:
            conn.autocommit = False
    return accepted, duplicates


def rows(conn: psycopg.Connection[Any], sql: str) -> list[tuple[Any, ...]]:
    return conn.execute(sql).fetchall()


def test_summaries_equal_a_scan_after_out_of_order_and_duplicate_batches(
    site: tuple[Fleet, SiteIdentity, ConnectionPool[Any]],
) -> None:
    plant, identity, pool = site
    now = datetime.now(UTC).replace(microsecond=0)
    items = counter_readings(now, days=3, step=timedelta(minutes=37))
    accepted, duplicates = ingest_shuffled(pool, identity, items)
    assert accepted == len(items) and duplicates == len(items)
    with plant.tx() as conn:
        days = rows(conn, SCAN_DAYS)
        assert len({d[1] for d in days}) >= 4, "the readings span four UTC days"
        assert rows(conn, SUMMARY_DAYS) == days
        assert rows(conn, SUMMARY_LATEST) == rows(conn, SCAN_LATEST)


def test_a_rolled_back_batch_leaves_no_trace_in_the_summaries(
    site: tuple[Fleet, SiteIdentity, ConnectionPool[Any]],
) -> None:
    plant, identity, pool = site
    now = datetime.now(UTC).replace(microsecond=0)
    ingest_shuffled(
        pool, identity, counter_readings(now - timedelta(hours=3), 1, timedelta(hours=1))
    )
    # newer readings, and older ones on days that have none yet, then the batch fails
    stamps = [now + timedelta(hours=h) for h in range(1, 30, 5)] + [now - timedelta(days=5)]
    with pool.connection() as conn:
        points = [r[0] for r in rows(conn, "SELECT id FROM meter_points ORDER BY id")]
        conn.execute("SELECT ensure_readings_partitions(%s, %s)", (min(stamps), max(stamps)))
        conn.commit()
        with conn.transaction(), conn.cursor() as cur:
            with cur.copy("COPY ingest_staging (point_id, ts, value) FROM STDIN") as copy:
                for point_id in points:
                    for ts in stamps:
                        copy.write_row((point_id, ts, 1e6))
            written = cur.execute(ingest.MOVE_SQL, (identity.site_id,)).fetchone()
            assert written and written[0] > 0
            assert rows(conn, SUMMARY_LATEST) == rows(conn, SCAN_LATEST)  # kept in the statement
            raise psycopg.Rollback()  # as a failure later in the batch's transaction would
    with plant.tx() as conn:
        assert rows(conn, SUMMARY_DAYS) == rows(conn, SCAN_DAYS)
        assert rows(conn, SUMMARY_LATEST) == rows(conn, SCAN_LATEST)
        assert all(value < 1e6 for _, _, value in rows(conn, SUMMARY_LATEST))


def scan_energy(conn: psycopg.Connection[Any], site_id: int, start: date) -> float:
    """The site's energy since ``start`` (UTC midnight) straight from the readings: per energy
    counter, its newest reading minus its last one before ``start`` (or its first after)."""
    row = conn.execute(
        """SELECT sum(greatest(0, now_v - coalesce(before_v, first_v)))
           FROM (SELECT p.id,
                   (SELECT value FROM readings WHERE point_id = p.id ORDER BY ts DESC LIMIT 1)
                       AS now_v,
                   (SELECT value FROM readings WHERE point_id = p.id AND ts < %(start)s
                    ORDER BY ts DESC LIMIT 1) AS before_v,
                   (SELECT value FROM readings WHERE point_id = p.id AND ts >= %(start)s
                    ORDER BY ts LIMIT 1) AS first_v
                 FROM meter_points p JOIN meters m ON m.id = p.meter_id
                 WHERE m.site_id = %(site)s AND p.unit = 'kWh') c""",
        {"site": site_id, "start": datetime(start.year, start.month, start.day, tzinfo=UTC)},
    ).fetchone()
    return float(row[0]) if row and row[0] is not None else 0.0


def test_fleet_energy_from_summaries_equals_a_scan_of_the_readings(
    site: tuple[Fleet, SiteIdentity, ConnectionPool[Any]],
) -> None:
    plant, identity, pool = site
    now = datetime.now(UTC).replace(microsecond=0)
    # from before this month began, so both baselines come from earlier readings
    ingest_shuffled(pool, identity, counter_readings(now, days=33, step=timedelta(hours=3)))
    # a late reading of yesterday, stamped after every other one of that day, moves today's
    # baseline
    day, month = fleet.boundaries(now)
    late = [
        {
            "meter": "m0",
            "point": "energy_kwh",
            "ts": format_ts(day - timedelta(seconds=1)),
            "value": 100000.0,
        },
    ]
    ingest_shuffled(pool, identity, late)
    with plant.tx() as conn:
        figures = fleet.site_figures(conn, plant.tenant_id, now, Thresholds(600, 1800))
        (plant_figures,) = figures
        expected_today = scan_energy(conn, identity.site_id, day.date())
        expected_month = scan_energy(conn, identity.site_id, month.date())
        assert plant_figures.energy_today == pytest.approx(expected_today)
        assert plant_figures.energy_month == pytest.approx(expected_month)
        assert expected_today != expected_month
        assert plant_figures.reporting == 2


SCAN_HOURS = "SELECT DISTINCT date_trunc('hour', ts) FROM readings ORDER BY 1"
DIRTY_HOURS = "SELECT hour FROM readings_hourly_dirty ORDER BY 1"


def test_bulk_loaded_batches_keep_the_same_summaries_and_dirty_hours_as_a_scan(
    site: tuple[Fleet, SiteIdentity, ConnectionPool[Any]],
) -> None:
    """Batches of new readings go straight into ``readings`` by COPY and keep their summaries
    from each point's first and last reading of an hour (``ingest.summary_rows``); a batch that
    overlaps stored readings takes the ``ON CONFLICT`` way. Readings every minute for a day,
    shuffled, several per point and hour, some stamped with a half-hour UTC offset."""
    plant, identity, pool = site
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    items = counter_readings(now, days=1, step=timedelta(minutes=1))
    india = timezone(timedelta(hours=5, minutes=30))
    for item in items[::7]:
        item["ts"] = datetime.fromisoformat(item["ts"]).astimezone(india).isoformat()
    rng = random.Random(11)
    rng.shuffle(items)
    half = len(items) // 2
    ingestor = ingest.Ingestor()

    def send(key: str, batch: list[dict[str, Any]]) -> dict[str, Any]:
        with pool.connection() as conn:
            conn.autocommit = True
            try:
                return ingestor.write_batch(conn, identity, key, batch)[0]
            finally:
                conn.autocommit = False

    def assert_summaries_equal_a_scan(stored: int) -> None:
        with plant.tx() as conn:
            assert rows(conn, "SELECT count(*) FROM readings") == [(stored,)]
            assert rows(conn, SUMMARY_DAYS) == rows(conn, SCAN_DAYS)
            assert rows(conn, SUMMARY_LATEST) == rows(conn, SCAN_LATEST)
            assert rows(conn, DIRTY_HOURS) == rows(conn, SCAN_HOURS)
            assert len(rows(conn, SCAN_HOURS)) >= 24

    first = send("first-half", items[:half])
    assert (first["accepted"], first["duplicates"], first["rejected"]) == (half, 0, [])
    assert_summaries_equal_a_scan(half)
    # overlaps the first half by a quarter: COPY fails on the key, ON CONFLICT counts them
    overlap = send("overlap", items[half // 2 :])
    assert (overlap["accepted"], overlap["duplicates"]) == (len(items) - half, half - half // 2)
    assert_summaries_equal_a_scan(len(items))
    # a live batch, one reading of each point (the ON CONFLICT way from the start)
    later = now + timedelta(minutes=3)
    live = counter_readings(later, days=0, step=timedelta(minutes=1))
    assert live and len({(i["meter"], i["point"]) for i in live}) == len(live)
    answer = send("live", live)
    assert (answer["accepted"], answer["duplicates"]) == (len(live), 0)
    assert_summaries_equal_a_scan(len(items) + len(live))


def test_summary_rows_keep_each_hours_ends() -> None:
    start = datetime(2026, 11, 30, 22, 0, tzinfo=UTC)
    readings = [
        (p, start + timedelta(minutes=m), float(m)) for m in range(0, 180, 10) for p in (1, 2)
    ]
    random.Random(3).shuffle(readings)
    kept = sorted(ingest.summary_rows(readings))
    assert kept == sorted(
        (p, start + timedelta(minutes=m), float(m))
        for p in (1, 2)
        for m in (0, 50, 60, 110, 120, 170)
    )
