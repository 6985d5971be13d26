"""The upload job against a real central (gunicorn, PostgreSQL): exactly once, oldest first,
leases, quarantine, outages and retries."""

from __future__ import annotations

import logging
import math
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psycopg
import pytest

from appliance import service
from appliance.bacnet.simulator import SimMeterSpec, meters_document
from appliance.meter_store import replace_meters
from appliance.meters_file import validate_meters
from appliance.sync import connectivity
from appliance.sync.central import CentralClient, CentralError
from appliance.sync.ledger import BatchRow, commit_claim, commit_settlement, unsendable
from appliance.sync.pump import drain
from common import wire
from tests.harness import (
    scalar,
)
from tests.ports import (
    free_tcp_port,
)
from tests.sync_helpers import (
    add_readings,
    assert_edge_equals_central,
    edge_readings,
    edge_settings,
    unsynced,
    with_settings,
)


def test_backlog_drains_to_central_exactly_once(enrolled) -> None:
    central, site, settings = enrolled
    add_readings(settings.database_url, 2500)
    result = drain(with_settings(settings, upload_batch_size=1000))
    # 1,000 then (a full batch: doubled) the 1,500 left
    assert (result.stopped, result.batches, result.accepted) == ("empty", 2, 2500)
    assert assert_edge_equals_central(settings.database_url, central, site.site_id) == 2500
    again = drain(settings)
    assert (again.batches, again.sent) == (0, 0)
    with psycopg.connect(settings.database_url) as conn:
        assert scalar(conn, "SELECT count(*) FROM upload_batches") == 0
        assert scalar(conn, "SELECT sum(accepted) FROM sync_log WHERE error IS NULL") == 2500
    st = service.get_sync_status(settings)
    assert st["backlog"] == 0 and st["connectivity"]["state"] == "online"
    assert st["last_sync_at"] is not None


def test_batches_are_claimed_oldest_first(enrolled) -> None:
    _, _, settings = enrolled
    add_readings(settings.database_url, 30)
    with psycopg.connect(settings.database_url) as conn:
        ids = [r[0] for r in conn.execute("SELECT id FROM readings ORDER BY id")]
        first, _ = commit_claim(conn, 10)
        second, _ = commit_claim(conn, 10)
    assert first is not None and second is not None
    assert [r.id for r in first.rows] == ids[:10]
    assert [r.id for r in second.rows] == ids[10:20]


def test_leased_rows_are_never_claimed_twice(enrolled) -> None:
    _, _, settings = enrolled
    add_readings(settings.database_url, 40)
    with psycopg.connect(settings.database_url) as a, psycopg.connect(settings.database_url) as b:
        batch_a, _ = commit_claim(a, 25)
        batch_b, _ = commit_claim(b, 25)  # a's batch is locked by a live session: not orphaned
        assert batch_a is not None and batch_b is not None
        assert not {r.id for r in batch_a.rows} & {r.id for r in batch_b.rows}
        assert len(batch_b.rows) == 15


def test_interrupted_batch_is_resent_with_the_same_idempotency_key(enrolled) -> None:
    """Central committed, the answer was lost, the worker died: the next run re-sends the same
    rows under the same key and central answers from its record, storing nothing twice."""
    central, site, settings = enrolled
    add_readings(settings.database_url, 50)
    dead = psycopg.connect(settings.database_url)
    batch, _ = commit_claim(dead, 20)
    assert batch is not None
    body = wire.encode_batch(batch.items())
    with CentralClient(settings) as client:
        assert client.post_readings(body, str(batch.id)).body["accepted"] == 20
    dead.close()  # the "worker" dies before marking anything: its lease lock goes with it
    result = drain(settings)
    assert result.batch_ids[0] == str(batch.id)
    assert result.sent == 50
    assert_edge_equals_central(settings.database_url, central, site.site_id)
    with psycopg.connect(central.db_url) as conn:
        assert (
            scalar(
                conn,
                "SELECT count(*) FROM sync_batches WHERE idempotency_key = %s",
                (str(batch.id),),
            )
            == 1
        )


def test_settle_is_all_or_nothing(enrolled) -> None:
    """A failure while marking synced rolls back: no row is half-marked, the batch stays."""
    _, _, settings = enrolled
    add_readings(settings.database_url, 10)
    with psycopg.connect(settings.database_url) as conn:
        batch, _ = commit_claim(conn, 10)
        assert batch is not None
        started = datetime.now(UTC)
        conn.execute("ALTER TABLE sync_log ADD CONSTRAINT no_logs CHECK (false) NOT VALID")
        conn.commit()
        with pytest.raises(psycopg.errors.CheckViolation):
            commit_settlement(conn, batch, started, accepted=10, duplicates=0, rejected={})
        conn.rollback()
        assert scalar(conn, "SELECT count(*) FROM upload_queue") == 10
        assert scalar(conn, "SELECT count(*) FROM upload_batches") == 1


def test_two_uploads_at_once_send_each_reading_once(enrolled) -> None:
    central, site, settings = enrolled
    add_readings(settings.database_url, 3000)
    small = with_settings(settings, upload_batch_size=100)
    results = []
    threads = [threading.Thread(target=lambda: results.append(drain(small))) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(r.sent for r in results) == 3000
    assert sum(r.duplicates for r in results) == 0
    assert all(r.batches > 0 for r in results), "both runs should have shared the work"
    assert_edge_equals_central(settings.database_url, central, site.site_id)


def test_poison_readings_are_quarantined_and_do_not_block_the_backlog(enrolled) -> None:
    central, site, settings = enrolled
    add_readings(settings.database_url, 100)
    with psycopg.connect(settings.database_url) as conn:
        ids = [r[0] for r in conn.execute("SELECT id FROM readings ORDER BY id")]
        conn.execute("UPDATE readings SET value = 'NaN' WHERE id = %s", (ids[30],))
        conn.execute("UPDATE readings SET value = 'Infinity' WHERE id = %s", (ids[31],))
        # a clock gone wrong: central refuses timestamps far in the future
        conn.execute("UPDATE readings SET ts = '2100-01-01Z' WHERE id = %s", (ids[60],))
    result = drain(with_settings(settings, upload_batch_size=25))
    assert result.stopped == "empty"
    assert result.quarantined_locally == 2 and result.rejected == 1
    assert result.accepted == 97
    quarantined = service.get_quarantine(settings)
    reasons = {q["reading_id"]: q["reason"] for q in quarantined}
    assert set(reasons) == {ids[30], ids[31], ids[60]}
    assert "finite" in reasons[ids[30]] and "accepted range" in reasons[ids[60]]
    assert service.get_sync_status(settings)["quarantined"] == 3
    assert_edge_equals_central(settings.database_url, central, site.site_id)


def test_backlog_survives_central_outage_and_drains_when_it_returns(
    enrolled, caplog: pytest.LogCaptureFixture
) -> None:
    central, site, settings = enrolled
    add_readings(settings.database_url, 500)
    down = with_settings(settings, central_url=f"http://127.0.0.1:{free_tcp_port()}")
    caplog.set_level(logging.INFO, logger=connectivity.__name__)
    for _ in range(3):
        result = drain(down)
        assert result.stopped == "error" and "unreachable" in (result.error or "")
    assert unsynced(settings.database_url) == 500
    st = service.get_sync_status(settings)
    assert st["connectivity"]["state"] == "offline"
    assert st["connectivity"]["consecutive_failures"] == 3
    assert st["recent_errors"] and "unreachable" in st["recent_errors"][0]["error"]
    offline_lines = [r for r in caplog.records if "unreachable" in r.getMessage()]
    assert len(offline_lines) == 1, "connectivity is logged once per change, not per try"
    result = drain(settings)
    assert result.stopped == "empty" and result.accepted == 500
    assert [r for r in caplog.records if "reachable again" in r.getMessage()]
    assert service.get_sync_status(settings)["connectivity"]["state"] == "online"
    assert_edge_equals_central(settings.database_url, central, site.site_id)


class _Failing(BaseHTTPRequestHandler):
    times: list[float] = []

    def do_POST(self) -> None:
        _Failing.times.append(time.monotonic())
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(503)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_failed_post_is_retried_five_times_with_doubling_waits(
    edge_db_url: str, redis_url: str
) -> None:
    """A real HTTP server that always answers 503 (central cannot be made to fail on cue)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Failing)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Failing.times = []
    settings = with_settings(
        edge_settings(edge_db_url, redis_url, f"http://127.0.0.1:{server.server_port}", None),
        api_key="k",
        upload_retry_backoff_s=0.1,
    )
    try:
        with CentralClient(settings) as client, pytest.raises(CentralError) as err:
            client.post_readings(wire.encode_batch([]), "b1")
    finally:
        server.shutdown()
    assert err.value.status == 503
    gaps = [b - a for a, b in zip(_Failing.times, _Failing.times[1:], strict=False)]
    assert len(_Failing.times) == 6  # the first try and 5 retries
    for gap, expected in zip(gaps, [0.1, 0.2, 0.4, 0.8, 1.6], strict=True):
        assert expected * 0.9 <= gap <= expected + 0.5, gaps


def test_paused_upload_holds_the_backlog_until_resumed(enrolled, redis_url: str) -> None:
    central, site, settings = enrolled
    add_readings(settings.database_url, 40)
    assert service.pause_upload(settings) is True
    assert service.pause_upload(settings) is False  # already paused
    assert drain(settings).stopped == "paused"
    assert unsynced(settings.database_url) == 40
    assert service.get_sync_status(settings)["upload_paused"] is True
    assert service.resume_upload(settings) is True  # also queues a run
    assert drain(settings).accepted == 40
    assert_edge_equals_central(settings.database_url, central, site.site_id)


def test_an_appliance_not_enrolled_keeps_its_readings(edge_db_url: str, redis_url: str) -> None:
    """Meters from a local file, readings collected, no central configured: the upload run
    says why it did nothing and every reading stays, unsynced, for when it is enrolled."""
    meters = validate_meters(meters_document([SimMeterSpec(device_instance=7, port=47907)]))
    with psycopg.connect(edge_db_url) as conn:
        replace_meters(conn, meters, source="file")
    add_readings(edge_db_url, 30)
    before = edge_readings(edge_db_url)
    settings = edge_settings(edge_db_url, redis_url, None, None)
    result = drain(settings)
    assert result.stopped == "not-enrolled" and "METERIT_CENTRAL_URL" in (result.error or "")
    assert result.sent == 0
    assert unsynced(edge_db_url) == 30 and edge_readings(edge_db_url) == before
    with psycopg.connect(edge_db_url) as conn:
        assert scalar(conn, "SELECT count(*) FROM upload_batches") == 0


def test_non_finite_values_never_reach_the_wire() -> None:
    """Three guards: the edge quarantines such a reading before batching it, the batch encoder
    refuses it, and central's parser rejects it."""
    row = BatchRow(1, 1, 1, datetime(2026, 11, 23, tzinfo=UTC), math.nan, "m", "p", "kWh")
    assert "finite" in (unsendable(row) or "")
    assert unsendable(row._replace(value=1.5)) is None
    with pytest.raises(ValueError):
        wire.encode_batch([{"value": math.nan}])
    item = {"meter": "m", "point": "p", "ts": "2026-11-23T00:00:00Z", "value": math.inf}
    with pytest.raises(ValueError, match="finite"):
        wire.parse_reading(item)
