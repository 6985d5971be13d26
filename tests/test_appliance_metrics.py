"""The appliance's /metrics on the local UI's port: off by default, opened by address or token
(limited like every secret), and its figures follow what the real collector, upload and buffer
budget did — simulated meters over UDP, the real edge database, a real central, gunicorn."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
import requests
from flask.testing import FlaskClient
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families

from appliance.bacnet.simulator import SimMeterSpec, meters_document, run_simulators
from appliance.settings import ApplianceSettings, load_settings
from appliance.sync import pump, retention
from appliance.sync.meter_config import sync_meters
from common.attempts import PER_ADDRESS
from common.config import ConfigError
from tests.central_fixtures import CentralServer
from tests.ports import free_tcp_port, free_udp_port
from tests.recent import T0
from tests.sync_helpers import add_readings, edge_settings, site_with_meters
from tests.test_collector import eventually, insert_meters, make_collector
from tests.web_fixtures import make_appliance
from web.app import create_app

TOKEN = "s3cret-metrics-token-for-prometheus"
DOCS = Path(__file__).resolve().parent.parent / "docs" / "metrics.md"
ONLY_AFTER_AN_UPLOAD = {"meterit_upload_last_success_timestamp_seconds"}
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def samples(text: str) -> Samples:
    """Every sample of a Prometheus text exposition, by name and labels (parsed, not grepped)."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(found: Samples, name: str, **labels: str) -> float:
    return found[(name, tuple(sorted(labels.items())))]


@pytest.fixture
def metrics_client(edge_db_url: str, redis_url: str, tmp_path: Path) -> Callable[..., FlaskClient]:
    """The local UI's app (``create_app(test_config)``) with the metrics settings given."""

    def make(settings: ApplianceSettings | None = None, **metrics: Any) -> FlaskClient:
        base = settings or edge_settings(edge_db_url, redis_url, None, None)
        app = create_app(
            {
                "TESTING": True,
                "APPLIANCE_SETTINGS": replace(
                    base,
                    web_password_hash_file=str(tmp_path / "web-password.argon2"),
                    web_initial_password_file=str(tmp_path / "no-initial-password"),
                    web_secret_key="metrics-test-secret-key",
                    **metrics,
                ),
            }
        )
        return app.test_client()

    return make


def scrape(client: FlaskClient) -> Samples:
    answer = client.get("/metrics")
    assert answer.status_code == 200, answer.text
    assert answer.content_type == CONTENT_TYPE_LATEST
    return samples(answer.text)


# ----- who may read it


def test_metrics_are_off_by_default_and_need_no_login(metrics_client: Callable[..., Any]) -> None:
    off = metrics_client().get("/metrics")
    assert off.status_code == 403
    assert "off" in off.text and "METERIT_METRICS_ALLOW_FROM" in off.text
    assert "meterit_" not in off.text
    # opened, it answers without a login: no redirect to the login page
    opened = metrics_client(metrics_allow_from="127.0.0.1").get("/metrics")
    assert opened.status_code == 200 and "meterit_backlog_readings" in opened.text


def test_metrics_open_by_address_or_network_only(metrics_client: Callable[..., Any]) -> None:
    client = metrics_client(metrics_allow_from="127.0.0.1, 10.20.0.0/16")
    assert client.get("/metrics").status_code == 200
    inside = client.get("/metrics", environ_base={"REMOTE_ADDR": "10.20.3.4"})
    assert inside.status_code == 200
    outside = client.get("/metrics", environ_base={"REMOTE_ADDR": "10.21.3.4"})
    assert outside.status_code == 403 and "not open to this client" in outside.text
    # a bearer token opens nothing when no token is configured
    guess = {"Authorization": "Bearer anything"}
    outside = client.get("/metrics", headers=guess, environ_base={"REMOTE_ADDR": "192.0.2.7"})
    assert outside.status_code == 403


def test_metrics_open_by_token_from_any_address(metrics_client: Callable[..., Any]) -> None:
    client = metrics_client(metrics_token=TOKEN, metrics_allow_from="127.0.0.1")
    far = {"REMOTE_ADDR": "192.0.2.7"}
    missing = client.get("/metrics", environ_base=far)
    assert missing.status_code == 401 and missing.headers["WWW-Authenticate"].startswith("Bearer")
    wrong = client.get("/metrics", headers={"Authorization": "Bearer nope"}, environ_base=far)
    assert wrong.status_code == 401 and "wrong bearer token" in wrong.text
    right = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, environ_base=far)
    assert right.status_code == 200 and "meterit_upload_readings_total" in right.text
    assert client.get("/metrics").status_code == 200  # the allowed address needs no token


def test_wrong_metrics_tokens_are_limited_per_address(metrics_client: Callable[..., Any]) -> None:
    client = metrics_client(metrics_token=TOKEN)
    far = {"REMOTE_ADDR": "192.0.2.8"}
    budget = int(PER_ADDRESS.split()[0])
    for _ in range(budget):
        wrong = client.get("/metrics", headers={"Authorization": "Bearer nope"}, environ_base=far)
        assert wrong.status_code == 401
    right = {"Authorization": f"Bearer {TOKEN}"}
    refused = client.get("/metrics", headers=right, environ_base=far)
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
    assert "too many failed attempts" in refused.text
    # another address has its own budget
    other = client.get("/metrics", headers=right, environ_base={"REMOTE_ADDR": "192.0.2.9"})
    assert other.status_code == 200


def test_a_bad_metrics_address_list_stops_the_start(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="METERIT_METRICS_ALLOW_FROM='10.0.0.0/8,intranet'"):
        load_settings({"METERIT_METRICS_ALLOW_FROM": "10.0.0.0/8,intranet"}, tmp_path)


# ----- what it says


def test_metrics_count_points_read_and_failed_per_meter_and_time_the_cycles(
    edge_db_url: str, redis_url: str, tmp_path: Path
) -> None:
    """The real collector polls a healthy meter, one with a bad point and one that is off; the
    real local UI under gunicorn (opened by token) reports what it did."""
    good = SimMeterSpec(device_instance=2301, port=free_udp_port(), points=4)
    bad_point = SimMeterSpec(
        device_instance=2302,
        port=free_udp_port(),
        points=4,
        error_points={"analog-input,2": "unknown-object"},
    )
    off = SimMeterSpec(device_instance=2303, port=free_udp_port(), points=3)
    insert_meters(edge_db_url, meters_document([good, bad_point, off]))
    appliance = make_appliance(edge_db_url, redis_url, tmp_path)
    appliance.env["METERIT_METRICS_TOKEN"] = TOKEN
    url = appliance.start_web() + "/metrics"
    auth = {"Authorization": f"Bearer {TOKEN}"}

    def scraped() -> Samples:
        answer = requests.get(url, headers=auth, timeout=10)
        assert answer.status_code == 200, answer.text
        return samples(answer.text)

    try:
        before = scraped()
        assert value(before, "meterit_collector_cycle_seconds_count") == 0
        assert value(before, "meterit_collector_points_read_total", meter="sim-2301") == 0
        assert requests.get(url, timeout=10).status_code == 401  # no token, no figures

        async def collect() -> int:
            sims = await run_simulators([good, bad_point, off])
            sims.set_offline(2303, True)
            collector = make_collector(edge_db_url)
            task = asyncio.ensure_future(collector.run())
            try:
                await eventually(lambda: _at_least(collector.cycles, 2))
            finally:
                collector.stop.set()
                await task
                sims.close()
            return collector.cycles

        cycles = asyncio.run(collect())
        after = scraped()
    finally:
        appliance.stop()

    stored = dict(
        appliance.sql(
            "SELECT m.external_id, count(*) FROM readings r JOIN meters m ON m.id = r.meter_id"
            " GROUP BY 1"
        )
    )
    read = "meterit_collector_points_read_total"
    failed = "meterit_collector_points_failed_total"
    assert value(after, read, meter="sim-2301") == stored["sim-2301"] == 4 * cycles
    assert value(after, failed, meter="sim-2301") == 0
    assert value(after, read, meter="sim-2302") == stored["sim-2302"] == 3 * cycles
    assert value(after, failed, meter="sim-2302") == cycles  # its one bad point, every cycle
    assert value(after, read, meter="sim-2303") == 0 and "sim-2303" not in stored
    assert value(after, failed, meter="sim-2303") == 3 * cycles  # all its points, every cycle
    assert value(after, "meterit_meter_up", meter="sim-2301") == 1
    assert value(after, "meterit_meter_up", meter="sim-2303") == 0
    assert value(after, "meterit_meter_consecutive_failures", meter="sim-2303") == cycles
    assert value(after, "meterit_collector_cycle_seconds_count") == cycles
    last = value(after, "meterit_collector_last_cycle_seconds")
    total = value(after, "meterit_collector_cycle_seconds_sum")
    assert 0 < last <= total < 60
    assert value(after, "meterit_backlog_readings") == sum(stored.values())
    # every metric docs/metrics.md names (table, sample, alert rules) is one really served
    served = {name for name, _ in after} | {name.removesuffix("_sum") for name, _ in after}
    documented = set(re.findall(r"\bmeterit_[a-z_]+", DOCS.read_text(encoding="utf-8")))
    assert documented - served <= ONLY_AFTER_AN_UPLOAD, documented - served


def logged_attempts(edge_db_url: str, where: str) -> int:
    """Upload attempts in the ledger's own log (``sync_log``), to check the counters against."""
    with psycopg.connect(edge_db_url) as conn:
        row = conn.execute(f"SELECT count(*) FROM sync_log WHERE {where}").fetchone()
    return int(row[0]) if row else 0


async def _at_least(have: int, want: int) -> bool:
    return have >= want


def test_metrics_follow_the_backlog_uploads_quarantine_and_drops(
    central_server: CentralServer,
    edge_db_url: str,
    redis_url: str,
    metrics_client: Callable[..., Any],
) -> None:
    site = site_with_meters(central_server)
    settings = edge_settings(edge_db_url, redis_url, central_server, site)
    assert sync_meters(settings).result == "ok"
    client = metrics_client(settings, metrics_allow_from="127.0.0.1")
    empty = scrape(client)
    assert value(empty, "meterit_backlog_readings") == 0
    assert value(empty, "meterit_backlog_oldest_age_seconds") == 0

    add_readings(edge_db_url, 100)  # from T0, a minute apart
    with psycopg.connect(edge_db_url) as conn:  # one the wire cannot carry: quarantined
        conn.execute("UPDATE readings SET value = 'NaN' WHERE id = (SELECT max(id) FROM readings)")
    queued = scrape(client)
    assert value(queued, "meterit_backlog_readings") == 100
    age = (datetime.now(UTC) - T0).total_seconds()
    assert age - 60 < value(queued, "meterit_backlog_oldest_age_seconds") < age + 60
    assert value(queued, "meterit_upload_batches_total", outcome="synced") == 0

    # central away: the batch fails and stays in the backlog
    away = replace(settings, central_url=f"http://127.0.0.1:{free_tcp_port()}")
    assert pump.drain(away, batch_size=40).stopped == "error"
    failing = scrape(client)
    failed = logged_attempts(edge_db_url, "error IS NOT NULL")
    assert failed >= 1  # every batch in flight when central did not answer
    assert value(failing, "meterit_upload_batches_total", outcome="failed") == failed
    assert value(failing, "meterit_upload_readings_total", outcome="accepted") == 0
    assert value(failing, "meterit_central_up") == 0
    # all still waiting, but the NaN one if a claim reached it (batches double while full):
    # the wire cannot carry it, so it is quarantined when claimed, whether central answers or not
    waiting = value(failing, "meterit_backlog_readings")
    assert waiting + value(failing, "meterit_quarantined_readings_total") == 100

    # a run re-sends one batch left by the failed run and may leave the other to the next
    runs = [pump.drain(settings, batch_size=40) for _ in range(2)]
    assert sum(r.accepted for r in runs) == 99 and runs[-1].stopped == "empty"
    synced = scrape(client)
    batches = sum(r.batches for r in runs)
    assert batches == logged_attempts(edge_db_url, "error IS NULL") >= 2
    assert value(synced, "meterit_upload_batches_total", outcome="synced") == batches
    assert value(synced, "meterit_upload_batches_total", outcome="failed") == failed
    assert value(synced, "meterit_upload_readings_total", outcome="accepted") == 99
    assert value(synced, "meterit_upload_readings_total", outcome="duplicate") == 0
    assert value(synced, "meterit_quarantined_readings_total") == 1
    assert value(synced, "meterit_backlog_readings") == 0
    assert value(synced, "meterit_backlog_oldest_age_seconds") == 0
    assert value(synced, "meterit_central_up") == 1
    last_success = value(synced, "meterit_upload_last_success_timestamp_seconds")
    assert abs(last_success - datetime.now(UTC).timestamp()) < 60

    # past the buffer budget the oldest unsynced readings are dropped, and counted
    add_readings(edge_db_url, 30)
    with psycopg.connect(edge_db_url) as conn:
        assert retention.commit_budget(conn, 20) == 10
    dropped = scrape(client)
    assert value(dropped, "meterit_dropped_readings_total") == 10
    assert value(dropped, "meterit_backlog_readings") == 20
