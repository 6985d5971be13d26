"""The no-loss promise under faults, with real processes: the worker (``meterit-appliance
worker``, RQ + cron) against real central (gunicorn), PostgreSQL and Redis, killed with SIGKILL
at each step of an upload, with Redis flushed, central's database restarted, two workers at
once. Every test ends with edge readings = central readings by natural key."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis

from appliance.sync.meter_config import sync_meters
from tests import harness
from tests.central_fixtures import CentralServer
from tests.harness import scalar
from tests.ports import free_tcp_port
from tests.private_postgres import PrivateCluster
from tests.sync_helpers import (
    ApplianceProcess,
    add_readings,
    assert_edge_equals_central,
    edge_settings,
    settings_env,
    site_with_meters,
    unsynced,
    wait_until,
    with_settings,
)
from tests.tcp_proxy import TcpProxy

pytestmark = pytest.mark.slow


def central_port(central: CentralServer) -> int:
    return int(central.base_url.rsplit(":", 1)[1])


@pytest.fixture(scope="module")
def private_redis_server() -> Iterator[str]:
    """A Redis of our own: the shared test Redis is flushed by other test runs at any moment,
    which would be a fault injected at random (the deliberate one is its own test)."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("needs redis-server for a private Redis")
    port = free_tcp_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    try:
        wait_until(lambda: _pings(client), 10, "the private Redis")
        yield url
    finally:
        client.close()
        proc.terminate()
        proc.wait(timeout=10)


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False


@pytest.fixture
def worker_redis_url(private_redis_server: str) -> str:
    client = redis.Redis.from_url(private_redis_server)
    client.flushdb()
    client.close()
    return private_redis_server


@pytest.fixture
def site_edge(
    central_server: CentralServer, edge_db_url: str, worker_redis_url: str, tmp_path: Path
):
    """A central site with meters, an edge that pulled them, and a way to start workers."""
    site = site_with_meters(central_server)
    settings = edge_settings(edge_db_url, worker_redis_url, central_server, site)
    assert sync_meters(settings).result == "ok"
    workers: list[ApplianceProcess] = []

    def start_worker(central_url: str | None = None, **env: str) -> ApplianceProcess:
        s = with_settings(
            settings,
            central_url=central_url or central_server.base_url,
            upload_interval_s=5,
            upload_batch_size=100,
            # the readings are stamped from T0, weeks back: retention goes by a reading's time,
            # and a restarted worker's first retention run would prune the synced ones before
            # the edge is compared with central
            retention_days=365,
        )
        proc = ApplianceProcess(
            ["worker"],
            settings_env(s, tmp_path, **env),
            tmp_path / f"worker-{len(workers)}.log",
        )
        workers.append(proc)
        return proc

    yield central_server, site, settings, start_worker
    for w in workers:
        w.stop(timeout=10)


def batches_in_flight(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        return [str(r[0]) for r in conn.execute("SELECT id FROM upload_batches ORDER BY first_id")]


def first_synced_batch(url: str) -> str:
    with psycopg.connect(url) as conn:
        return str(
            scalar(conn, "SELECT batch_id FROM sync_log WHERE error IS NULL ORDER BY id LIMIT 1")
        )


def drained(url: str, worker: ApplianceProcess, timeout: float = 180) -> None:
    try:
        wait_until(lambda: unsynced(url) == 0, timeout, "the backlog to drain", interval=0.3)
    except AssertionError:
        raise AssertionError(f"backlog not drained; worker log:\n{worker.log()[-4000:]}") from None


def test_worker_drains_backlog_sends_heartbeat_and_stops_cleanly(site_edge) -> None:
    central, site, settings, start_worker = site_edge
    add_readings(settings.database_url, 1000)
    worker = start_worker()
    drained(settings.database_url, worker)
    with psycopg.connect(central.db_url) as conn:
        wait_until(
            lambda: scalar(
                conn, "SELECT count(*) FROM heartbeats WHERE site_id = %s", (site.site_id,)
            ),
            30,
            "a heartbeat",
        )
        body = scalar(conn, "SELECT last_status FROM sites WHERE id = %s", (site.site_id,))
    assert {m["external_id"] for m in body["meters"]} == {"meter-0", "meter-1"}
    assert worker.stop() == 0, worker.log()[-3000:]
    # the journal gets our lines, not RQ's three lines per job at INFO
    assert "upload run:" in worker.log() and "Job OK" not in worker.log()
    assert_edge_equals_central(settings.database_url, central, site.site_id)


def test_worker_killed_before_the_post_reaches_central(site_edge) -> None:
    central, site, settings, start_worker = site_edge
    add_readings(settings.database_url, 500)
    proxy = TcpProxy("127.0.0.1", central_port(central))
    proxy.mode = "hold"  # the request leaves the appliance but never reaches central
    try:
        worker = start_worker(proxy.url)
        held = wait_until(lambda: batches_in_flight(settings.database_url), 30, "a batch in flight")
        time.sleep(0.5)
        assert proxy.forwarded == 0
        worker.kill()
        proxy.mode = "pass"
        proxy.release_held()
        worker = start_worker(proxy.url)
        drained(settings.database_url, worker)
    finally:
        proxy.close()
    assert first_synced_batch(settings.database_url) == held[0], "re-sent under the same key"
    assert_edge_equals_central(settings.database_url, central, site.site_id)


def test_worker_killed_after_central_committed_before_the_answer(site_edge) -> None:
    central, site, settings, start_worker = site_edge
    add_readings(settings.database_url, 500)
    proxy = TcpProxy("127.0.0.1", central_port(central))
    proxy.mode = "blackhole"  # central stores the batch; its answer never comes back
    try:
        worker = start_worker(proxy.url)
        wait_until(lambda: proxy.swallowed > 0, 30, "central to answer the first batch")
        held = batches_in_flight(settings.database_url)
        with psycopg.connect(central.db_url) as conn:
            # committed centrally: the first batch (100), and maybe the second POSTed alongside
            # it (200: a full batch doubles the next one)
            assert scalar(conn, "SELECT count(*) FROM readings") in (100, 300)
        assert unsynced(settings.database_url) == 500  # but not marked on the edge
        worker.kill()
        proxy.mode = "pass"
        proxy.release_held()
        worker = start_worker(proxy.url)
        drained(settings.database_url, worker)
    finally:
        proxy.close()
    assert first_synced_batch(settings.database_url) == held[0]
    with psycopg.connect(settings.database_url) as conn:
        # central answered the replay from its record: the same 100 accepted, nothing twice
        assert scalar(conn, "SELECT accepted FROM sync_log WHERE batch_id = %s", (held[0],)) == 100
    assert_edge_equals_central(settings.database_url, central, site.site_id)


def test_worker_killed_while_marking_synced(site_edge) -> None:
    central, site, settings, start_worker = site_edge
    add_readings(settings.database_url, 500)
    proxy = TcpProxy("127.0.0.1", central_port(central))
    proxy.mode, proxy.delay_s = "delay", 1.0  # time to get between claim and settle
    blocker = psycopg.connect(settings.database_url)
    try:
        worker = start_worker(proxy.url)
        held = wait_until(lambda: batches_in_flight(settings.database_url), 30, "a batch in flight")
        # hold the batch's row: the worker's settling transaction blocks on it, half done
        blocker.execute("SELECT 1 FROM upload_batches WHERE id = %s FOR UPDATE", (held[0],))

        def settling() -> bool:
            with psycopg.connect(settings.database_url) as conn:
                return bool(
                    scalar(
                        conn,
                        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                        " AND query LIKE 'DELETE FROM upload_batches%%'",
                    )
                )

        wait_until(settling, 30, "the worker to be marking the batch synced")
        worker.kill()
        blocker.rollback()
        assert unsynced(settings.database_url) == 500  # its marking died with it
        proxy.mode = "pass"
        worker = start_worker(proxy.url)
        drained(settings.database_url, worker)
    finally:
        blocker.close()
        proxy.close()
    assert first_synced_batch(settings.database_url) == held[0]
    assert_edge_equals_central(settings.database_url, central, site.site_id)


def test_redis_flushed_mid_drain_loses_nothing(site_edge) -> None:
    central, site, settings, start_worker = site_edge
    add_readings(settings.database_url, 3000)
    proxy = TcpProxy("127.0.0.1", central_port(central))
    proxy.mode, proxy.delay_s = "delay", 0.2
    try:
        # batches kept at 100 (they double while full otherwise): the drain must outlast the flush
        worker = start_worker(proxy.url, METERIT_UPLOAD_BATCH_MAX="100")
        wait_until(lambda: unsynced(settings.database_url) < 2800, 60, "the drain to start")
        client = redis.Redis.from_url(settings.redis_url)
        client.flushdb()
        client.close()
        assert unsynced(settings.database_url) > 0
        drained(settings.database_url, worker)
        assert worker.process.poll() is None, "the worker survives a flushed Redis"
    finally:
        proxy.close()
    assert_edge_equals_central(settings.database_url, central, site.site_id)


def test_two_workers_at_once_send_each_reading_once(site_edge) -> None:
    central, site, settings, start_worker = site_edge
    add_readings(settings.database_url, 4000)
    proxy = TcpProxy("127.0.0.1", central_port(central))
    proxy.mode, proxy.delay_s = "delay", 0.05
    try:
        workers = [start_worker(proxy.url), start_worker(proxy.url)]
        drained(settings.database_url, workers[0])
    finally:
        proxy.close()
    with psycopg.connect(settings.database_url) as conn:
        assert scalar(conn, "SELECT coalesce(sum(duplicates), 0) FROM sync_log") == 0
        assert scalar(conn, "SELECT sum(accepted) FROM sync_log WHERE error IS NULL") == 4000
    assert_edge_equals_central(settings.database_url, central, site.site_id)


def test_central_down_for_a_while_then_back(site_edge) -> None:
    central, site, settings, start_worker = site_edge
    add_readings(settings.database_url, 800)
    proxy = TcpProxy("127.0.0.1", central_port(central))
    proxy.mode = "reset"
    try:
        worker = start_worker(proxy.url)

        def offline() -> bool:
            with psycopg.connect(settings.database_url) as conn:
                return bool(scalar(conn, "SELECT connectivity FROM appliance_state") == "offline")

        wait_until(offline, 60, "the appliance to notice central is down")
        time.sleep(3)
        assert unsynced(settings.database_url) == 800
        proxy.mode = "pass"
        drained(settings.database_url, worker)
    finally:
        proxy.close()
    log = worker.log()
    assert log.count("central unreachable") == 1, log[-3000:]
    # the outage and its end, each once, with the field journalctl selects on
    assert log.count("FAILURE=central-unreachable") == 2, log[-3000:]
    assert log.count("central reachable again") == 1, log[-3000:]
    assert_edge_equals_central(settings.database_url, central, site.site_id)


# -- central's PostgreSQL restarted: a private cluster, since the shared one serves others -----


@pytest.fixture
def private_postgres() -> Iterator[PrivateCluster]:
    cluster = PrivateCluster.primary()
    try:
        yield cluster
    finally:
        cluster.stop()


def test_central_postgres_restarted_mid_drain(
    private_postgres, edge_db_url: str, worker_redis_url: str, make_central_server, tmp_path: Path
) -> None:
    admin_url = private_postgres.admin_url
    name = harness.migrated_template(admin_url, harness.CENTRAL_MIGRATIONS, "central")
    central = make_central_server(db_url=harness.with_database(admin_url, name))
    site = site_with_meters(central)
    settings = edge_settings(edge_db_url, worker_redis_url, central, site)
    assert sync_meters(settings).result == "ok"
    add_readings(edge_db_url, 3000)
    proxy = TcpProxy("127.0.0.1", central_port(central))
    proxy.mode, proxy.delay_s = "delay", 0.1
    s = with_settings(settings, central_url=proxy.url, upload_interval_s=5, upload_batch_size=100)
    worker = ApplianceProcess(["worker"], settings_env(s, tmp_path), tmp_path / "worker.log")
    try:
        wait_until(lambda: unsynced(edge_db_url) < 2700, 60, "the drain to start")
        private_postgres.restart()
        drained(edge_db_url, worker)
    finally:
        worker.stop(timeout=10)
        proxy.close()
    assert_edge_equals_central(edge_db_url, central, site.site_id)


def test_central_connections_killed_mid_drain(site_edge) -> None:
    central, site, settings, start_worker = site_edge
    add_readings(settings.database_url, 3000)
    proxy = TcpProxy("127.0.0.1", central_port(central))
    proxy.mode, proxy.delay_s = "delay", 0.1
    try:
        worker = start_worker(proxy.url)
        wait_until(lambda: unsynced(settings.database_url) < 2700, 60, "the drain to start")
        dbname = central.db_url.rsplit("/", 1)[1]
        with psycopg.connect(central.db_url, autocommit=True) as conn:
            killed = scalar(
                conn,
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = %s AND pid <> pg_backend_pid()",
                (dbname,),
            )
        assert killed > 0
        drained(settings.database_url, worker)
    finally:
        proxy.close()
    assert_edge_equals_central(settings.database_url, central, site.site_id)
