"""End to end, every piece its own process: simulated BACnet meters (``simulate``), the
collector, the meter sync, the sync worker and a real central (gunicorn). Readings polled over
UDP arrive in central's database, each exactly once."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest

from tests.central_fixtures import CentralServer
from tests.harness import scalar
from tests.ports import free_udp_port
from tests.sync_helpers import (
    ApplianceProcess,
    assert_edge_equals_central,
    central_readings,
    edge_settings,
    settings_env,
    unsynced,
    wait_until,
    with_settings,
)

pytestmark = pytest.mark.slow


def test_readings_flow_from_simulated_meters_to_central(
    central_server: CentralServer, edge_db_url: str, redis_url: str, tmp_path: Path
) -> None:
    meters_file = tmp_path / "meters.json"
    base = free_udp_port()
    procs: list[ApplianceProcess] = []
    sim = ApplianceProcess(
        ["simulate", "--count", "2", "--base-port", str(base), "--points", "4",
         "--first-instance", "3001", "--write-meters", str(meters_file)],
        settings_env(edge_settings(edge_db_url, redis_url, None, None), tmp_path),
        tmp_path / "simulate.log",
    )  # fmt: skip
    procs.append(sim)
    try:
        wait_until(meters_file.exists, 30, "the simulator's meters file")
        document = json.loads(meters_file.read_text())
        site = central_server.create_site("e2e-plant")
        for meter in document:
            central_server.add_meter(
                site.site_id,
                meter["external_id"],
                [(p["name"], p["object"], p["unit"]) for p in meter["points"]],
                address=meter["address"],
                device_instance=meter["device_instance"],
            )
        settings = with_settings(
            edge_settings(edge_db_url, redis_url, central_server, site), upload_interval_s=5
        )
        env = settings_env(
            settings,
            tmp_path,
            METERIT_BACNET_ADDRESS=f"127.0.0.1:{free_udp_port()}",
            METERIT_POLL_INTERVAL_S="1",
            METERIT_REQUEST_TIMEOUT_S="0.5",
        )
        meter_sync = ApplianceProcess(["meter-sync"], env, tmp_path / "meter-sync.log")
        assert meter_sync.wait(60) == 0, meter_sync.log()
        collector = ApplianceProcess(["collector"], env, tmp_path / "collector.log")
        procs.append(collector)
        worker = ApplianceProcess(["worker"], env, tmp_path / "worker.log")
        procs.append(worker)

        def arrived() -> bool:
            got = central_readings(central_server, site.site_id)
            return len({k[0] for k in got}) == 2 and len(got) >= 3 * 8

        try:
            wait_until(arrived, 90, "readings of both meters in central", interval=1)
        except AssertionError:
            raise AssertionError(
                f"collector:\n{collector.log()[-3000:]}\nworker:\n{worker.log()[-3000:]}"
            ) from None
        assert collector.stop() == 0
        wait_until(lambda: unsynced(edge_db_url) == 0, 60, "the last readings to sync")
        count = assert_edge_equals_central(edge_db_url, central_server, site.site_id)
        assert count >= 24
        with psycopg.connect(edge_db_url) as conn:
            assert scalar(conn, "SELECT count(DISTINCT meter_id) FROM readings") == 2
    finally:
        for p in reversed(procs):
            p.stop(timeout=15)
