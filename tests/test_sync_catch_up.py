"""Catching up a backlog against a real central (gunicorn, PostgreSQL, Redis): batches grow
while the backlog lasts, the per-site limit counts readings rather than requests, and a batch
central finds too large goes again in smaller ones."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import psycopg

from appliance.sync.meter_config import sync_meters
from appliance.sync.pump import drain
from tests.central_fixtures import CentralServer
from tests.harness import scalar
from tests.ports import free_tcp_port
from tests.recent import T0
from tests.sync_helpers import (
    add_readings,
    assert_edge_equals_central,
    edge_settings,
    site_with_meters,
    with_settings,
)
from tests.test_central_sync import count_readings, items, post_batch


def test_a_backlog_drains_without_429_while_a_flood_past_the_readings_budget_is_refused(
    make_central_server: Any, edge_db_url: str, redis_url: str
) -> None:
    # 12 requests a minute: 120 batches of 100 would be throttled after the 12th, and a budget
    # counted in requests could not tell a catch-up from a flood; counted in readings it can
    central: CentralServer = make_central_server(
        METERIT_RATE_LIMIT="12/minute", METERIT_SYNC_READINGS_PER_MINUTE="20000"
    )
    site = site_with_meters(central)
    settings = edge_settings(edge_db_url, redis_url, central, site)
    assert sync_meters(settings).result == "ok"
    add_readings(edge_db_url, 12000)
    result = drain(with_settings(settings, upload_batch_size=100, upload_batch_max=50000))
    assert (result.stopped, result.error, result.accepted) == ("empty", None, 12000)
    # 100, 200, 400 … 3,200 and the 5,700 left: seven requests for the whole backlog
    assert result.batches == 7
    assert assert_edge_equals_central(edge_db_url, central, site.site_id) == 12000
    with psycopg.connect(edge_db_url) as conn:
        assert scalar(conn, "SELECT count(*) FROM sync_log WHERE error IS NOT NULL") == 0

    # 8,000 readings of the minute's 20,000 are left: a batch of 9,000 is refused whole
    flood = items("meter-0", n=9000, start=T0 + timedelta(days=10))
    refused = post_batch(central, site.api_key, "flood-1", flood)
    assert refused.status_code == 429, refused.text
    assert int(refused.headers["Retry-After"]) >= 1
    assert "20000 readings a minute" in refused.json()["error"]
    assert count_readings(central) == 12000
    # what fits in the budget still goes through, and then the budget is spent
    assert post_batch(central, site.api_key, "flood-2", flood[:8000]).status_code == 200
    spent = post_batch(central, site.api_key, "flood-3", flood[8000:8001])
    assert spent.status_code == 429 and int(spent.headers["Retry-After"]) >= 1
    assert count_readings(central) == 20000


def test_a_batch_central_finds_too_large_goes_again_in_smaller_ones(
    make_central_server: Any, edge_db_url: str, redis_url: str
) -> None:
    central: CentralServer = make_central_server(METERIT_MAX_BATCH_READINGS="300")
    site = site_with_meters(central)
    settings = edge_settings(edge_db_url, redis_url, central, site)
    assert sync_meters(settings).result == "ok"
    add_readings(edge_db_url, 2000)
    result = drain(with_settings(settings, upload_batch_size=100, upload_batch_max=1000))
    assert (result.stopped, result.error, result.accepted) == ("empty", None, 2000)
    assert assert_edge_equals_central(edge_db_url, central, site.site_id) == 2000
    with psycopg.connect(edge_db_url) as conn:
        refused = conn.execute(
            "SELECT row_count FROM sync_log WHERE error LIKE '%%413%%' ORDER BY started_at"
        ).fetchall()
        sizes = [r[0] for r in conn.execute("SELECT row_count FROM sync_log WHERE error IS NULL")]
        assert scalar(conn, "SELECT count(*) FROM upload_batches") == 0
    assert refused and all(n > 300 for (n,) in refused), refused
    assert max(sizes) <= 300 and sum(sizes) == 2000, sizes


def test_batches_go_through_unlimited_while_redis_is_away(make_central_server: Any) -> None:
    """Redis holds no data: the readings budget, like the request limit, lets batches through
    (with a warning) rather than refusing every site while it is away."""
    nobody = f"redis://127.0.0.1:{free_tcp_port()}/0"
    central: CentralServer = make_central_server(
        METERIT_REDIS_URL=nobody, METERIT_SYNC_READINGS_PER_MINUTE="10"
    )
    site = site_with_meters(central)
    batch = items("meter-0", n=50, start=T0)
    answer = post_batch(central, site.api_key, "no-redis", batch)
    assert answer.status_code == 200, answer.text
    assert answer.json()["accepted"] == 50
    assert "readings budget not checked, Redis unavailable" in central.log()
