"""Trend-log backfill over real UDP into a real edge database and on to a real central.

An hour of downtime is the meters' and the collector's clock moved on by an hour, not an hour of
sleeping: the simulated meters' trend history follows their clock, the collector stamps its
readings with its own.
"""

from __future__ import annotations

import asyncio
import itertools
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from appliance.bacnet.client import BacpypesClient, ClientConfig
from appliance.bacnet.device import DeviceTarget
from appliance.bacnet.simulator import (
    SimMeterSpec,
    SimulatorHandle,
    meters_document,
    run_simulators,
)
from appliance.collector.loop import Collector
from appliance.settings import load_settings
from appliance.sync.meter_config import sync_meters
from appliance.sync.pump import drain
from tests.central_fixtures import CentralServer
from tests.ports import free_udp_port
from tests.sync_helpers import assert_edge_equals_central, central_readings, edge_settings
from tests.test_collector import insert_meters

TREND_S = 60
POINTS = 4


class MovableClock:
    """Wall time plus an offset the test moves."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


def make_collector(url: str, clock: MovableClock) -> Collector:
    settings = load_settings(
        {
            "METERIT_DATABASE_URL": url,
            "METERIT_POLL_INTERVAL_S": "1",
            "METERIT_REQUEST_TIMEOUT_S": "0.5",
        }
    )
    client = BacpypesClient(
        ClientConfig(local_address=f"127.0.0.1:{free_udp_port()}", timeout_base_s=0.5)
    )
    return Collector(settings, client, clock=clock)


@asynccontextmanager
async def collecting(
    url: str, spec: SimMeterSpec, clock: MovableClock
) -> AsyncIterator[tuple[SimulatorHandle, Collector]]:
    """The simulated meter and a collector running against it for the block; both stop after."""
    sims = await run_simulators([spec], clock=clock)
    collector = make_collector(url, clock)
    task = asyncio.ensure_future(collector.run())
    try:
        yield sims, collector
    finally:
        collector.stop.set()
        await task
        sims.close()


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 60.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        if await check():
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"condition not met within {timeout} s")


def scalar(url: str, sql: str, params: Any = ()) -> Any:
    with psycopg.connect(url) as conn:
        row = conn.execute(sql, params).fetchone()
    assert row is not None
    return row[0]


async def run_until(collector: Collector, url: str, cycles: int) -> None:
    """Run the collector until it stored ``cycles`` cycles and filled every gap."""
    task = asyncio.ensure_future(collector.run())

    async def done() -> bool:
        return collector.cycles >= cycles and scalar(url, "SELECT count(*) FROM backfill_gaps") == 0

    try:
        await eventually(done, timeout=150)
    finally:
        collector.stop.set()
        await task


def test_trend_log_is_read_back_by_time_page_by_page() -> None:
    spec = SimMeterSpec(2801, free_udp_port(), points=2, trend_interval_s=TREND_S,
                        trend_history_s=86400, max_apdu=480)  # fmt: skip
    clock = MovableClock()

    async def scenario() -> None:
        sims = await run_simulators([spec], clock=clock)
        try:
            config = ClientConfig(local_address=f"127.0.0.1:{free_udp_port()}")
            async with BacpypesClient(config) as client:
                target = DeviceTarget(spec.address)
                logs = await client.trend_logs(target)
                assert sorted(logs.values()) == ["trend-log,1", "trend-log,2"]
                until = clock()
                since = until - timedelta(hours=3)
                records = await client.read_trend(target, "trend-log,1", since, until)
                assert client.stats.read_range_requests > 3, "a 480-byte APDU takes pages"
        finally:
            sims.close()
        first = math.floor(since.timestamp() / TREND_S) + 1
        last = math.ceil(until.timestamp() / TREND_S) - 1
        assert [ts.timestamp() for ts, _ in records] == [
            float(k * TREND_S) for k in range(first, last + 1)
        ]
        energy = [v for _, v in records]
        assert energy == sorted(energy), "the kWh counter only increases"

    asyncio.run(scenario())


@pytest.mark.slow
def test_an_hour_with_the_collector_stopped_leaves_no_gap_at_central(
    central_server: CentralServer, edge_db_url: str, redis_url: str
) -> None:
    specs = [
        SimMeterSpec(2811 + i, free_udp_port(), points=POINTS, trend_interval_s=TREND_S,
                     trend_history_s=3 * 3600)
        for i in range(2)
    ]  # fmt: skip
    site = central_server.create_site("backfill-plant")
    central_server.add_meters(site.site_id, meters_document(specs))
    settings = edge_settings(edge_db_url, redis_url, central_server, site)
    assert sync_meters(settings).result == "ok"
    clock = MovableClock()

    async def scenario() -> tuple[datetime, datetime]:
        sims = await run_simulators(specs, clock=clock)
        try:
            # the first start reads back the meters' whole history (here 3 h), then polls
            await run_until(make_collector(edge_db_url, clock), edge_db_url, 2)
            stopped = scalar(edge_db_url, "SELECT max(ts) FROM readings WHERE NOT backfilled")
            clock.offset += timedelta(hours=1)  # an hour later, for the meters and the appliance
            restarted = make_collector(edge_db_url, clock)
            await run_until(restarted, edge_db_url, 2)
            assert restarted.backfill.readings >= 2 * POINTS * 59
        finally:
            sims.close()
        resumed = scalar(
            edge_db_url, "SELECT min(ts) FROM readings WHERE NOT backfilled AND ts > %s", (stopped,)
        )
        return stopped, resumed

    stopped, resumed = asyncio.run(scenario())
    assert drain(settings).stopped == "empty"
    assert_edge_equals_central(edge_db_url, central_server, site.site_id)

    # every trend record of the downtime is at central: the gap is 0 readings
    at_central = central_readings(central_server, site.site_id)
    first = math.floor(stopped.timestamp() / TREND_S) + 1
    last = math.ceil(resumed.timestamp() / TREND_S) - 1
    assert last - first >= 59, "the downtime was an hour"
    expected = {
        (meter["external_id"], point["name"], datetime.fromtimestamp(k * TREND_S, UTC))
        for meter in meters_document(specs)
        for point in meter["points"]
        for k in range(first, last + 1)
    }
    missing = expected - at_central.keys()
    assert not missing, (
        f"{len(missing)} readings of the downtime missing, e.g. {sorted(missing)[:3]}"
    )
    backfilled = scalar(
        edge_db_url, "SELECT count(*) FROM readings WHERE backfilled AND ts > %s", (stopped,)
    )
    assert backfilled == len(expected)


def test_a_meter_back_after_being_unreachable_gets_its_gap_read_back(edge_db_url: str) -> None:
    spec = SimMeterSpec(2821, free_udp_port(), points=2, trend_interval_s=TREND_S,
                        trend_history_s=3 * 3600)  # fmt: skip
    insert_meters(edge_db_url, meters_document([spec]))
    clock = MovableClock()

    async def scenario() -> None:
        async with collecting(edge_db_url, spec, clock) as (sims, _):
            await eventually(lambda: _state(edge_db_url, "reachable"))
            sims.set_offline(2821, True)
            await eventually(lambda: _state(edge_db_url, "unreachable"))
            clock.offset += timedelta(minutes=30)  # it stays away half an hour
            sims.set_offline(2821, False)
            await eventually(lambda: _state(edge_db_url, "reachable"))
            await eventually(lambda: _no_gaps(edge_db_url), timeout=150)

    asyncio.run(scenario())
    with psycopg.connect(edge_db_url) as conn:
        polled = [
            ts
            for (ts,) in conn.execute(
                "SELECT DISTINCT ts FROM readings WHERE NOT backfilled ORDER BY ts"
            )
        ]
        gap_from, gap_to = max(itertools.pairwise(polled), key=lambda pair: pair[1] - pair[0])
        inside = conn.execute(
            "SELECT count(*) FROM readings WHERE backfilled AND ts > %s AND ts < %s",
            (gap_from, gap_to),
        ).fetchone()
    assert gap_to - gap_from >= timedelta(minutes=30)
    first = math.floor(gap_from.timestamp() / TREND_S) + 1
    last = math.ceil(gap_to.timestamp() / TREND_S) - 1
    assert inside is not None and inside[0] == 2 * (last - first + 1)


async def _state(url: str, state: str) -> bool:
    return bool(scalar(url, "SELECT coalesce(max(state), '') FROM meter_status") == state)


async def _no_gaps(url: str) -> bool:
    return bool(scalar(url, "SELECT count(*) FROM backfill_gaps") == 0)


def test_a_meter_configured_while_the_collector_runs_gets_its_history(edge_db_url: str) -> None:
    """As on a new appliance (and in the demo): the collector starts before the first meter sync
    brings the meters; their trend history is read back all the same."""
    spec = SimMeterSpec(2831, free_udp_port(), points=2, trend_interval_s=TREND_S,
                        trend_history_s=3600)  # fmt: skip
    clock = MovableClock()

    async def scenario() -> None:
        async with collecting(edge_db_url, spec, clock) as (_, collector):
            await eventually(lambda: _cycles(collector, 1))
            insert_meters(edge_db_url, meters_document([spec]))
            with psycopg.connect(edge_db_url, autocommit=True) as conn:
                conn.execute("NOTIFY meters_changed")
            await eventually(lambda: _backfilled_at_least(edge_db_url, 2 * 59), timeout=150)
            await eventually(lambda: _no_gaps(edge_db_url), timeout=150)

    asyncio.run(scenario())


async def _cycles(collector: Collector, n: int) -> bool:
    return collector.cycles >= n


async def _backfilled_at_least(url: str, n: int) -> bool:
    return bool(scalar(url, "SELECT count(*) FROM readings WHERE backfilled") >= n)
