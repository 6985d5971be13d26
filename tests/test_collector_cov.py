"""Meters with ``"cov": true`` against simulated meters over real UDP and a real edge database:
readings come from notifications (the simulator sees no read), subscriptions are renewed, and
a device gone silent is polled again, with one journal line each way."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from typing import Any

import psycopg
import pytest

from appliance.bacnet.client import BacpypesClient, ClientConfig
from appliance.bacnet.simulator import (
    SimMeterSpec,
    SimulatorHandle,
    meter_spec,
    meters_document,
    run_simulators,
)
from appliance.collector.loop import Collector
from appliance.meter_store import replace_meters
from appliance.settings import load_settings
from appliance.sync.meter_config import sync_meters
from appliance.sync.pump import drain
from tests.central_fixtures import CentralServer
from tests.ports import free_udp_port
from tests.sync_helpers import assert_edge_equals_central, central_readings, edge_settings
from tests.test_collector import eventually, readings_per_meter


def store_cov_meter(url: str, spec: SimMeterSpec) -> None:
    """The meter as the edge stores it from a meters file with "cov": true; only its noisy
    points (power, voltage), which move past the covIncrement at every simulator refresh."""
    meter = meter_spec(spec)
    meter = dataclasses.replace(meter, points=meter.points[1:3], cov=True)
    with psycopg.connect(url) as conn, conn.transaction():
        replace_meters(conn, [meter], source="file")


def make_collector(url: str, interval: int, lifetime: int) -> Collector:
    settings = load_settings(
        {
            "METERIT_DATABASE_URL": url,
            "METERIT_POLL_INTERVAL_S": str(interval),
            "METERIT_COV_LIFETIME_S": str(lifetime),
            "METERIT_BACKFILL_MAX_DAYS": "0",
        }
    )
    client = BacpypesClient(
        ClientConfig(local_address=f"127.0.0.1:{free_udp_port()}", timeout_base_s=0.5)
    )
    return Collector(settings, client)


def run(
    url: str,
    spec: SimMeterSpec,
    body: Any,
    *,
    interval: int,
    lifetime: int,
) -> None:
    store_cov_meter(url, spec)

    async def main() -> None:
        sims = await run_simulators([spec])
        collector = make_collector(url, interval, lifetime)
        task = asyncio.ensure_future(collector.run())
        try:
            await body(collector, sims)
        finally:
            collector.stop.set()
            await task
            sims.close()

    asyncio.run(asyncio.wait_for(main(), 90))


async def readings(url: str, meter: str) -> int:
    return (await readings_per_meter(url)).get(meter, 0)


async def at_least(url: str, meter: str, n: int) -> bool:
    return await readings(url, meter) >= n


def cov_spec(instance: int) -> SimMeterSpec:
    return SimMeterSpec(instance, free_udp_port(), points=4, cov_refresh_s=0.1)


def test_readings_come_from_notifications_not_polls(edge_db_url: str) -> None:
    spec = cov_spec(2601)

    async def body(collector: Collector, sims: SimulatorHandle) -> None:
        sim = sims.meters[2601]
        # the first cycle polls once (a reading at once) and subscribes
        await eventually(lambda: at_least(edge_db_url, "sim-2601", 20))
        polls, count = sim.requests_seen, await readings(edge_db_url, "sim-2601")
        await eventually(lambda: at_least(edge_db_url, "sim-2601", count + 40))
        assert sim.requests_seen == polls, "readings kept coming without a read"
        assert sim.cov_subscriptions_seen == 2  # one per point; 60 s lifetime: no renewal yet
        cycles = collector.cycles
        # ten notifications a second per point against one cycle every 2 s: not from polls
        assert await readings(edge_db_url, "sim-2601") > 4 * cycles

    run(edge_db_url, spec, body, interval=2, lifetime=60)


def test_subscriptions_are_renewed_before_they_run_out(edge_db_url: str) -> None:
    spec = cov_spec(2602)

    async def body(collector: Collector, sims: SimulatorHandle) -> None:
        sim = sims.meters[2602]
        # a 2 s lifetime, renewed at half of it: readings go on for several lifetimes
        await eventually(lambda: _subscriptions_at_least(sims, 2602, 8))
        subscriptions = [c for d in sim._cov_detections.values() for c in d.cov_subscriptions]
        assert len(subscriptions) == 2, "renewals update the subscription, never add one"
        polls, count = sim.requests_seen, await readings(edge_db_url, "sim-2602")
        await asyncio.sleep(2.5)  # longer than the lifetime: an unrenewed one would have ended
        await eventually(lambda: at_least(edge_db_url, "sim-2602", count + 20))
        assert sim.requests_seen == polls

    run(edge_db_url, spec, body, interval=1, lifetime=2)


async def _subscriptions_at_least(sims: SimulatorHandle, instance: int, n: int) -> bool:
    return sims.meters[instance].cov_subscriptions_seen >= n


def test_a_silent_device_is_polled_and_cov_resumes(
    edge_db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    spec = cov_spec(2603)
    caplog.set_level(logging.INFO, logger="appliance.collector.cov")

    async def body(collector: Collector, sims: SimulatorHandle) -> None:
        sim = sims.meters[2603]
        await eventually(lambda: at_least(edge_db_url, "sim-2603", 20))
        polls = sim.requests_seen
        sims.set_cov_silent(2603, True)
        # more than 2 poll intervals without a notification: polled again, and kept polled
        await eventually(lambda: _polls_above(sims, 2603, polls + 2))
        count = await readings(edge_db_url, "sim-2603")
        await eventually(lambda: at_least(edge_db_url, "sim-2603", count + 4))  # polled readings
        sims.set_cov_silent(2603, False)
        await eventually(lambda: _logged(caplog, "notifications again"))
        polls = sim.requests_seen
        await eventually(lambda: at_least(edge_db_url, "sim-2603", count + 40))
        assert sim.requests_seen == polls, "back on notifications, polling stopped"

    run(edge_db_url, spec, body, interval=1, lifetime=60)
    fallbacks = [r for r in caplog.records if "no change-of-value notification" in r.message]
    resumes = [r for r in caplog.records if "notifications again" in r.message]
    assert len(fallbacks) == 1 and len(resumes) == 1, [r.message for r in caplog.records]
    assert "sim-2603" in fallbacks[0].message and "2x the poll interval" in fallbacks[0].message


async def _polls_above(sims: SimulatorHandle, instance: int, n: int) -> bool:
    return sims.meters[instance].requests_seen >= n


async def _logged(caplog: pytest.LogCaptureFixture, text: str) -> bool:
    return any(text in r.message for r in caplog.records)


def test_cov_readings_reach_central(
    central_server: CentralServer, edge_db_url: str, redis_url: str
) -> None:
    """The opt-in set at central travels in /sync/config; the notified readings go up like any."""
    spec = cov_spec(2604)
    site = central_server.create_site("cov-plant")
    meter = meters_document([spec])[0]
    central_server.add_meter(
        site.site_id,
        meter["external_id"],
        [(p["name"], p["object"], p["unit"]) for p in meter["points"][1:3]],
        address=meter["address"],
        cov=True,
    )
    settings = edge_settings(edge_db_url, redis_url, central_server, site)
    assert sync_meters(settings).result == "ok"
    with psycopg.connect(edge_db_url) as conn:
        assert conn.execute("SELECT cov FROM meters").fetchall() == [(True,)]

    async def main() -> int:
        sims = await run_simulators([spec])
        collector = make_collector(edge_db_url, interval=2, lifetime=60)
        task = asyncio.ensure_future(collector.run())
        try:
            await eventually(lambda: at_least(edge_db_url, "sim-2604", 30))
            polls = sims.meters[2604].requests_seen
            await eventually(lambda: at_least(edge_db_url, "sim-2604", 60))
            assert sims.meters[2604].requests_seen == polls
        finally:
            collector.stop.set()
            await task
            sims.close()
        return collector.cycles

    cycles = asyncio.run(asyncio.wait_for(main(), 90))
    assert drain(settings).stopped == "empty"
    synced = assert_edge_equals_central(edge_db_url, central_server, site.site_id)
    assert synced > 2 * 2 * cycles  # two points: more than two readings per cycle and point
    at_central = central_readings(central_server, site.site_id)
    assert {name for _, name, _ in at_central} == {"power_kw", "voltage_l1_v"}
