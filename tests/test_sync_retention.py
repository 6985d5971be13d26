"""Retention and the buffer budget on a real edge database; heartbeat and status to a real
central; the queue actions through real Redis."""

from __future__ import annotations

import logging

import psycopg
import pytest
import redis
from rq import Queue

from appliance import service
from appliance.sync import heartbeat, jobs, ledger, retention
from appliance.sync.pump import drain
from common.heartbeat import MAX_ERROR_LENGTH
from tests.harness import (
    scalar,
)
from tests.sync_helpers import (
    add_readings,
    unsynced,
)


def test_synced_readings_are_pruned_after_retention_unsynced_never(enrolled) -> None:
    _, _, settings = enrolled
    add_readings(settings.database_url, 100)
    drain(settings)
    add_readings(settings.database_url, 50)  # unsynced, however old
    synced = "NOT EXISTS (SELECT 1 FROM upload_queue q WHERE q.id = r.id)"
    with psycopg.connect(settings.database_url) as conn:
        # retention goes by a reading's own time: of the synced, 60 are older than the window
        # and 40 within it; the unsynced are far older
        conn.execute(f"UPDATE readings r SET ts = now() - make_interval(secs => id) WHERE {synced}")
        conn.execute(
            "UPDATE readings SET ts = ts - interval '8 days'"
            f" WHERE id IN (SELECT id FROM readings r WHERE {synced} ORDER BY id LIMIT 60)"
        )
        conn.execute(
            "UPDATE readings r SET ts = now() - interval '30 days' - make_interval(secs => id)"
            f" WHERE NOT {synced}"
        )
    result = retention.run(settings)
    assert (result.pruned, result.dropped) == (60, 0)
    with psycopg.connect(settings.database_url) as conn:
        assert scalar(conn, f"SELECT count(*) FROM readings r WHERE {synced}") == 40
    assert unsynced(settings.database_url) == 50


def test_buffer_budget_drops_oldest_unsynced_counted_per_meter(
    enrolled, caplog: pytest.LogCaptureFixture
) -> None:
    central, _, settings = enrolled
    add_readings(settings.database_url, 1000)
    with psycopg.connect(settings.database_url) as conn:
        oldest = [r[0] for r in conn.execute("SELECT id FROM readings ORDER BY id LIMIT 300")]
    caplog.set_level(logging.WARNING, logger=retention.__name__)
    budget = retention.RetentionResult()
    with psycopg.connect(settings.database_url) as conn:
        budget.dropped = retention.commit_budget(conn, 700)
        assert scalar(conn, "SELECT min(id) FROM readings") == oldest[-1] + 1
        per_meter = conn.execute(
            "SELECT meter_id, row_count, from_ts <= to_ts FROM dropped_readings ORDER BY meter_id"
        ).fetchall()
        assert scalar(conn, "SELECT dropped_total FROM appliance_state") == 300
    assert budget.dropped == 300
    assert [(n, ok) for _, n, ok in per_meter] == [(150, True), (150, True)]
    assert len([r for r in caplog.records if "buffer budget" in r.getMessage()]) == 2
    assert service.get_sync_status(settings)["dropped_total"] == 300
    body = heartbeat.send(settings)
    assert body is not None and body["dropped_readings"] == 300 and body["backlog"] == 700
    with psycopg.connect(central.db_url) as conn:
        last = scalar(
            conn, "SELECT last_status FROM sites ORDER BY last_heartbeat_at DESC NULLS LAST LIMIT 1"
        )
    assert last["dropped_readings"] == 300


def test_in_flight_readings_are_never_dropped_by_the_budget(enrolled) -> None:
    _, _, settings = enrolled
    add_readings(settings.database_url, 100)
    with psycopg.connect(settings.database_url) as conn:
        batch, _ = ledger.commit_claim(conn, 50)  # a claim as the upload job makes it
        assert batch is not None
        assert retention.commit_budget(conn, 10) == 50
        held = [r.id for r in batch.rows]
        assert scalar(conn, "SELECT count(*) FROM readings WHERE id = ANY(%s)", (held,)) == 50


def test_heartbeat_reports_backlog_meters_and_pause(enrolled) -> None:
    central, site, settings = enrolled
    add_readings(settings.database_url, 20)
    service.pause_collection(settings)
    body = heartbeat.send(settings)
    assert body is not None
    assert body["backlog"] == 20 and body["oldest_unsynced_age_s"] > 0
    assert body["collection_paused"] is True and body["upload_paused"] is False
    assert body["versions"]["meterit"] and body["versions"]["postgresql"]
    assert [m["external_id"] for m in body["meters"]] == ["meter-0", "meter-1"]
    assert all(m["state"] == "unknown" for m in body["meters"])
    with psycopg.connect(central.db_url) as conn:
        stored = scalar(conn, "SELECT last_status FROM sites WHERE id = %s", (site.site_id,))
    assert stored["backlog"] == 20 and stored["collection_paused"] is True


def test_heartbeat_clips_a_long_meter_error_to_what_central_accepts(enrolled) -> None:
    """The edge keeps a meter's whole error; the heartbeat carries what the contract allows,
    and central (checking with the same validator) takes it."""
    central, site, settings = enrolled
    with psycopg.connect(settings.database_url) as conn:
        conn.execute(
            "INSERT INTO meter_status (meter_id, state, last_error)"
            " SELECT id, 'unreachable', repeat('timeout ', 500) FROM meters"
        )
    body = heartbeat.send(settings)
    assert body is not None
    errors = [m["last_error"] for m in body["meters"]]
    assert all(len(e) == MAX_ERROR_LENGTH and e.startswith("timeout ") for e in errors)
    with psycopg.connect(central.db_url) as conn:
        stored = scalar(conn, "SELECT last_status FROM sites WHERE id = %s", (site.site_id,))
    assert [m["state"] for m in stored["meters"]] == ["unreachable", "unreachable"]


def test_pause_and_resume_collection_notify_the_collector(enrolled) -> None:
    _, _, settings = enrolled
    with psycopg.connect(settings.database_url, autocommit=True) as listener:
        listener.execute("LISTEN collection_paused")
        assert service.pause_collection(settings) is True
        assert service.get_sync_status(settings)["collection_paused"] is True
        assert service.resume_collection(settings) is True
        payloads = [n.payload for n in listener.notifies(timeout=2, stop_after=2)]
    assert payloads == ["true", "false"]


def test_sync_now_and_meter_sync_now_queue_jobs_for_the_worker(enrolled) -> None:
    _, _, settings = enrolled
    upload_id = service.sync_now(settings)
    meter_id = service.meter_sync_now(settings)
    conn = redis.Redis.from_url(settings.redis_url)
    queued = Queue(jobs.QUEUE, connection=conn).job_ids
    conn.close()
    assert queued == [upload_id, meter_id]


def test_status_reads_meters_with_their_backlog(enrolled) -> None:
    _, _, settings = enrolled
    add_readings(settings.database_url, 8)  # 4 points, 2 per meter
    meters = service.get_meter_status(settings)
    assert [(m["external_id"], m["points"], m["backlog"], m["state"]) for m in meters] == [
        ("meter-0", 2, 4, "unknown"),
        ("meter-1", 2, 4, "unknown"),
    ]
    js = service.jsonable(service.get_sync_status(settings))
    assert isinstance(js["connectivity"]["since"], str) and js["connectivity"]["since"].endswith(
        "Z"
    )
