"""Central as a service: rate limit, /health against a PostgreSQL that really stops, metrics."""

from __future__ import annotations

import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import requests

from central import retention
from common import db
from common.embedded import EmbeddedPostgres
from common.wire import SYNC_AUTH, SYNC_READINGS, encode_batch
from tests import harness
from tests.central_fixtures import CentralServer, start_central_server
from tests.test_central_sync import count_readings, items, post_batch, site_with_meter


def test_rate_limit_answers_429_with_retry_after_per_site(make_central_server: Any) -> None:
    server: CentralServer = make_central_server(METERIT_RATE_LIMIT="3/minute")
    busy = server.create_site("busy")
    quiet = server.create_site("quiet")

    def call(key: str) -> requests.Response:
        return requests.post(server.url(SYNC_AUTH), headers={"X-API-Key": key}, timeout=10)

    assert [call(busy.api_key).status_code for _ in range(3)] == [200, 200, 200]
    limited = call(busy.api_key)
    assert limited.status_code == 429
    assert int(limited.headers["Retry-After"]) > 0
    assert "rate limit exceeded" in limited.json()["error"]
    assert call(quiet.api_key).status_code == 200  # the limit counts per site


def test_health_goes_503_when_postgresql_stops_and_recovers(redis_url: str, tmp_path: Path) -> None:
    data = Path(tempfile.mkdtemp(prefix="meterit-health-pg-"))
    pg = EmbeddedPostgres(data)
    try:
        name = harness.create_database(pg.url)
        url = harness.with_database(pg.url, name)
        db.migrate(url, harness.CENTRAL_MIGRATIONS)
        server = start_central_server(url, redis_url, tmp_path)
        try:
            site = site_with_meter(server)
            assert requests.get(server.url("/health"), timeout=10).status_code == 200
            assert post_batch(server, site.api_key, "b1", items(n=5)).status_code == 200

            pg.stop()  # the PostgreSQL server process really goes away
            down = requests.get(server.url("/health"), timeout=15)
            assert down.status_code == 503
            assert down.json()["checks"]["database"].startswith("unreachable")
            assert down.json()["checks"]["redis"] == "ok"
            refused = requests.post(
                server.url(SYNC_READINGS),
                data=encode_batch(items(n=5)),
                headers={
                    "X-API-Key": site.api_key,
                    "Idempotency-Key": "b2",
                    "Content-Encoding": "gzip",
                },
                timeout=30,
            )
            assert refused.status_code == 503  # retryable, never a 500
            assert "database is unavailable" in refused.json()["error"]

            pg = EmbeddedPostgres(data)  # same data folder: the same databases come back
            assert requests.get(server.url("/health"), timeout=15).status_code == 200
        finally:
            server.stop()
    finally:
        pg.stop()


def test_metrics_count_ingested_readings(make_central_server: Any) -> None:
    central_server = make_central_server(METERIT_METRICS_ALLOW_FROM="127.0.0.0/8")
    site = site_with_meter(central_server)
    post_batch(central_server, site.api_key, "b1", items(n=7))
    post_batch(central_server, site.api_key, "b2", items(n=7))
    text = requests.get(central_server.url("/metrics"), timeout=10).text
    assert 'meterit_ingest_readings_total{outcome="accepted"} 7.0' in text
    assert 'meterit_ingest_readings_total{outcome="duplicate"} 7.0' in text
    assert "meterit_ingest_batch_seconds_bucket" in text


def test_prune_drops_old_batch_answers_and_a_late_replay_is_still_stored_once(
    central_server: CentralServer,
) -> None:
    site = site_with_meter(central_server)
    assert post_batch(central_server, site.api_key, "old", items(n=4)).json()["accepted"] == 4
    with psycopg.connect(central_server.db_url) as conn:
        conn.execute("UPDATE sync_batches SET received_at = now() - interval '40 days'")
        conn.commit()
        done = retention.prune(conn, timedelta(days=30), timedelta(days=90))
    assert done == {"sync_batches": 1, "heartbeats": 0}
    late = post_batch(central_server, site.api_key, "old", items(n=4))
    assert late.json() == {"accepted": 0, "duplicates": 4, "rejected": []}
    assert count_readings(central_server) == 4
