"""The collector against simulated meters over real UDP and a real edge database."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import time
from collections.abc import Awaitable, Callable, Coroutine
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import AsyncConnection

from appliance.bacnet.client import BacpypesClient, ClientConfig
from appliance.bacnet.simulator import SimMeterSpec, meters_document, run_simulators
from appliance.collector.loop import Collector, next_tick
from appliance.settings import load_settings
from tests.notify_socket import NotifySocket
from tests.ports import free_udp_port
from tests.tcp_proxy import TcpProxy


def insert_meters(url: str, document: list[dict[str, Any]]) -> None:
    """Meters as `meters load` would store them (the file format the simulator describes)."""
    with psycopg.connect(url) as conn:
        for meter in document:
            meter_id = conn.execute(
                "INSERT INTO meters (external_id, name, address, device_instance) "
                "VALUES (%s, %s, %s, %s) RETURNING id",
                (meter["external_id"], meter["name"], meter["address"], meter["device_instance"]),
            ).fetchone()[0]  # type: ignore[index]
            for point in meter["points"]:
                otype, oinst = point["object"].split(",")
                conn.execute(
                    "INSERT INTO meter_points (meter_id, name, object_type, object_instance, unit) "
                    "VALUES (%s, %s, %s, %s, %s)",
                    (meter_id, point["name"], otype, int(oinst), point["unit"]),
                )


def make_collector(url: str, interval: int = 1) -> Collector:
    settings = load_settings(
        {
            "METERIT_DATABASE_URL": url,
            "METERIT_POLL_INTERVAL_S": str(interval),
            "METERIT_REQUEST_TIMEOUT_S": "0.3",
            # these tests count polled readings; backfill has its own (tests/test_trend_backfill)
            "METERIT_BACKFILL_MAX_DAYS": "0",
        }
    )
    client = BacpypesClient(
        ClientConfig(local_address=f"127.0.0.1:{free_udp_port()}", timeout_base_s=0.3, retries=0)
    )
    return Collector(settings, client)


async def fetch(url: str, sql: str, params: Any = ()) -> list[tuple[Any, ...]]:
    async with await AsyncConnection.connect(url, autocommit=True) as conn:
        return await (await conn.execute(sql, params)).fetchall()


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"condition not met within {timeout} s")


async def readings_per_meter(url: str) -> dict[str, int]:
    rows = await fetch(
        url,
        "SELECT m.external_id, count(*) FROM readings r JOIN meters m ON m.id = r.meter_id "
        "GROUP BY m.external_id",
    )
    return {name: n for name, n in rows}


async def status(url: str, external_id: str) -> dict[str, Any]:
    rows = await fetch(
        url,
        "SELECT s.state, s.last_error, s.point_errors, s.consecutive_failures FROM meter_status s "
        "JOIN meters m ON m.id = s.meter_id WHERE m.external_id = %s",
        (external_id,),
    )
    if not rows:
        return {}
    state, error, point_errors, failures = rows[0]
    return {"state": state, "error": error, "point_errors": point_errors, "failures": failures}


def run(scenario: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(scenario())


def test_next_tick_is_clock_aligned() -> None:
    assert next_tick(125.3, 60) == 180
    assert next_tick(120.0, 60) == 180
    assert next_tick(7.9, 1) == 8


def test_collector_reads_difficult_meters_and_one_bad_point_spares_the_rest(
    edge_db_url: str,
) -> None:
    specs = [
        SimMeterSpec(device_instance=2001, port=free_udp_port(), points=20),
        # small APDU, no segmentation: needs chunked ReadPropertyMultiple
        SimMeterSpec(
            device_instance=2002, port=free_udp_port(), points=20, max_apdu=128, segmentation=False
        ),
        # no ReadPropertyMultiple at all: ReadProperty per point
        SimMeterSpec(device_instance=2003, port=free_udp_port(), points=6, refuse_rpm="reject"),
        # one point answers unknown-object
        SimMeterSpec(
            device_instance=2004,
            port=free_udp_port(),
            points=6,
            error_points={"analog-input,2": "unknown-object"},
        ),
    ]
    insert_meters(edge_db_url, meters_document(specs))

    async def scenario() -> None:
        sims = await run_simulators(specs)
        collector = make_collector(edge_db_url)
        task = asyncio.ensure_future(collector.run())
        try:
            await eventually(lambda: _cycles_at_least(collector, 2))
        finally:
            collector.stop.set()
            await task
            sims.close()
        counts = await readings_per_meter(edge_db_url)
        cycles = collector.cycles
        assert counts["sim-2001"] == 20 * cycles
        assert counts["sim-2002"] == 20 * cycles
        assert counts["sim-2003"] == 6 * cycles
        assert counts["sim-2004"] == 5 * cycles, "only the bad point is missing"
        bad = await status(edge_db_url, "sim-2004")
        assert bad["state"] == "reachable"
        assert list(bad["point_errors"]) == [meters_document(specs[3:])[0]["points"][1]["name"]]
        assert "unknown-object" in next(iter(bad["point_errors"].values()))
        assert (await status(edge_db_url, "sim-2002"))["point_errors"] == {}
        # the kWh counter never decreases
        kwh = await fetch(
            edge_db_url,
            "SELECT r.value FROM readings r JOIN meter_points p ON p.id = r.point_id "
            "WHERE p.name = 'energy_kwh' AND r.meter_id = (SELECT id FROM meters WHERE external_id='sim-2001') "
            "ORDER BY r.ts",
        )
        values = [v for (v,) in kwh]
        assert values == sorted(values) and len(values) == cycles

    run(scenario)


async def _cycles_at_least(collector: Collector, n: int) -> bool:
    return collector.cycles >= n


def test_meter_going_offline_turns_unreachable_and_recovers(edge_db_url: str) -> None:
    spec = SimMeterSpec(device_instance=2101, port=free_udp_port(), points=4)
    other = SimMeterSpec(device_instance=2102, port=free_udp_port(), points=4)
    insert_meters(edge_db_url, meters_document([spec, other]))

    async def scenario() -> None:
        sims = await run_simulators([spec, other])
        collector = make_collector(edge_db_url)
        task = asyncio.ensure_future(collector.run())
        try:
            await eventually(lambda: _state_is(edge_db_url, "sim-2101", "reachable"))
            sims.set_offline(2101, True)
            await eventually(lambda: _state_is(edge_db_url, "sim-2101", "unreachable"))
            down = await status(edge_db_url, "sim-2101")
            assert "no answer" in down["error"]
            assert (await status(edge_db_url, "sim-2102"))["state"] == "reachable"
            sims.set_offline(2101, False)
            await eventually(lambda: _state_is(edge_db_url, "sim-2101", "reachable"))
            assert (await status(edge_db_url, "sim-2101"))["failures"] == 0
        finally:
            collector.stop.set()
            await task
            sims.close()

    run(scenario)


async def _state_is(url: str, external_id: str, state: str) -> bool:
    return (await status(url, external_id)).get("state") == state


def test_pause_stops_polling_and_resume_restarts_it(edge_db_url: str) -> None:
    spec = SimMeterSpec(device_instance=2201, port=free_udp_port(), points=3)
    insert_meters(edge_db_url, meters_document([spec]))

    async def scenario() -> None:
        sims = await run_simulators([spec])
        collector = make_collector(edge_db_url)
        task = asyncio.ensure_future(collector.run())
        try:
            await eventually(lambda: _cycles_at_least(collector, 1))
            await fetch(
                edge_db_url, "UPDATE appliance_state SET collection_paused = true RETURNING 1"
            )
            await eventually(lambda: _paused(collector, True))
            before = sims.requests_seen(2201)
            await asyncio.sleep(2.5)
            assert sims.requests_seen(2201) == before, "a paused collector must not poll"
            await fetch(
                edge_db_url, "UPDATE appliance_state SET collection_paused = false RETURNING 1"
            )
            await eventually(lambda: _requests_above(sims, 2201, before), timeout=5)
        finally:
            collector.stop.set()
            await task
            sims.close()

    run(scenario)


async def _paused(collector: Collector, value: bool) -> bool:
    return collector._paused is value


async def _requests_above(sims: Any, instance: int, n: int) -> bool:
    return bool(sims.requests_seen(instance) > n)


def test_meter_added_while_running_is_polled_without_restart(edge_db_url: str) -> None:
    first = SimMeterSpec(device_instance=2301, port=free_udp_port(), points=3)
    later = SimMeterSpec(device_instance=2302, port=free_udp_port(), points=3)
    insert_meters(edge_db_url, meters_document([first]))

    async def scenario() -> None:
        sims = await run_simulators([first, later])
        collector = make_collector(edge_db_url)
        task = asyncio.ensure_future(collector.run())
        try:
            await eventually(lambda: _cycles_at_least(collector, 1))
            await asyncio.to_thread(insert_meters, edge_db_url, meters_document([later]))
            await eventually(lambda: _has_readings(edge_db_url, "sim-2302"))
        finally:
            collector.stop.set()
            await task
            sims.close()

    run(scenario)


async def _has_readings(url: str, external_id: str) -> bool:
    return (await readings_per_meter(url)).get(external_id, 0) > 0


def test_stop_during_a_cycle_writes_nothing_partial(edge_db_url: str) -> None:
    slow = [
        dataclasses.replace(
            SimMeterSpec(device_instance=2400 + i, port=free_udp_port(), points=2), latency_ms=250
        )
        for i in range(3)
    ]
    insert_meters(edge_db_url, meters_document(slow))

    async def scenario() -> None:
        sims = await run_simulators(slow)
        collector = make_collector(edge_db_url, interval=5)
        collector.settings = dataclasses.replace(collector.settings, poll_concurrency=1)
        task = asyncio.ensure_future(collector.run())
        try:
            # the first cycle starts at once; stop it while meters are still being read
            await eventually(lambda: _requests_above(sims, 2400, 0), timeout=5)
            collector.stop.set()
            await task
        finally:
            sims.close()
        assert collector.cycles == 0
        assert await fetch(edge_db_url, "SELECT count(*) FROM readings") == [(0,)]

    run(scenario)


def test_a_meter_that_answers_but_yields_no_value_is_not_reachable(
    edge_db_url: str, monkeypatch: Any
) -> None:
    """It was shown green 'reachable' and counted so in STATUS=: now it has its own state."""
    silent = SimMeterSpec(
        device_instance=2501, port=free_udp_port(), points=3, unknown_properties=("present-value",)
    )
    good = SimMeterSpec(device_instance=2502, port=free_udp_port(), points=3)
    insert_meters(edge_db_url, meters_document([silent, good]))

    async def scenario(notify: NotifySocket) -> None:
        sims = await run_simulators([silent, good])
        collector = make_collector(edge_db_url)
        task = asyncio.ensure_future(collector.run())
        try:
            await eventually(lambda: _cycles_at_least(collector, 2))
        finally:
            collector.stop.set()
            await task
            sims.close()
        bad = await status(edge_db_url, "sim-2501")
        assert bad["state"] == "no-values"
        assert bad["error"].startswith("answers but gave no value")
        assert "unknown-property" in bad["error"]
        assert bad["failures"] >= 2
        assert (await status(edge_db_url, "sim-2502"))["state"] == "reachable"
        assert "1/2 meters reachable, 1 answer without values" in notify.statuses()[-1]

    with NotifySocket() as notify:
        monkeypatch.setenv("NOTIFY_SOCKET", notify.path)
        asyncio.run(scenario(notify))


def test_a_meter_refusing_rpm_with_an_error_is_read_and_the_refusal_survives_a_restart(
    edge_db_url: str,
) -> None:
    """It got 0 readings forever: the ReadProperty fallback only triggered on a Reject."""
    spec = SimMeterSpec(device_instance=2503, port=free_udp_port(), points=4, refuse_rpm="error")
    insert_meters(edge_db_url, meters_document([spec]))

    async def run_once(cycles: int) -> Collector:
        collector = make_collector(edge_db_url)
        task = asyncio.ensure_future(collector.run())
        try:
            await eventually(lambda: _cycles_at_least(collector, cycles))
        finally:
            collector.stop.set()
            await task
        return collector

    async def scenario() -> None:
        sims = await run_simulators([spec])
        try:
            first = await run_once(2)
            counts = await readings_per_meter(edge_db_url)
            assert counts["sim-2503"] == 4 * first.cycles
            learned = await fetch(edge_db_url, "SELECT rpm_refused_at FROM meter_status")
            assert learned[0][0] is not None
            restarted = await run_once(1)
            assert isinstance(restarted.client, BacpypesClient)
            assert restarted.client.stats.rpm_requests == 0, "learned before: no RPM tried"
            assert restarted.client.stats.rp_requests > 0
        finally:
            sims.close()
        assert (await status(edge_db_url, "sim-2503"))["state"] == "reachable"

    run(scenario)


# What systemd would do: kill the unit when no WATCHDOG=1 came for this long. The test plays
# systemd's part with a real notify socket; the collector pings every half of it.
WATCHDOG_S = 3.0


def test_edge_database_outage_longer_than_the_watchdog_keeps_the_collector_up_and_loses_nothing(
    edge_db_url: str, monkeypatch: Any
) -> None:
    spec = SimMeterSpec(device_instance=2504, port=free_udp_port(), points=3)
    insert_meters(edge_db_url, meters_document([spec]))
    url = urlsplit(edge_db_url)
    if not url.hostname or url.hostname.startswith("/"):
        pytest.skip("the test database listens on a Unix socket; the proxy needs TCP")
    proxy = TcpProxy(url.hostname, url.port or 5432)
    credentials = url.netloc.rpartition("@")[0]
    netloc = f"{credentials}@127.0.0.1:{proxy.port}" if credentials else f"127.0.0.1:{proxy.port}"
    proxied = urlunsplit(url._replace(netloc=netloc))

    async def scenario(notify: NotifySocket) -> None:
        sims = await run_simulators([spec])
        collector = make_collector(proxied)
        task = asyncio.ensure_future(collector.run())
        try:
            await eventually(lambda: _cycles_at_least(collector, 2))
            outage_from = datetime.now(UTC)
            stored = collector.cycles
            proxy.cut()
            polled = sims.requests_seen(2504)
            # longer than the watchdog: at least WATCHDOG_S + 2 one-second poll cycles
            await eventually(
                lambda: _requests_above(sims, 2504, polled + int(WATCHDOG_S) + 2), timeout=30
            )
            assert collector.cycles == stored, "nothing can be written while it is away"
            assert not task.done(), "the collector stays up"
            outage_to = datetime.now(UTC)
            proxy.mode = "pass"
            await eventually(lambda: _cycles_at_least(collector, stored + int(WATCHDOG_S) + 3))
        finally:
            collector.stop.set()
            await task
            sims.close()
            proxy.close()
        assert collector.dropped_held == 0
        counts = await readings_per_meter(edge_db_url)
        assert counts["sim-2504"] == 3 * collector.cycles, "every polled cycle was stored"
        during = await fetch(
            edge_db_url,
            "SELECT count(DISTINCT ts) FROM readings WHERE ts BETWEEN %s AND %s",
            (outage_from, outage_to),
        )
        assert during[0][0] >= int(WATCHDOG_S) + 2, "the outage's cycles were held and written"
        pings = notify.times_of("WATCHDOG=1")
        ready = notify.times_of("READY=1")[0]
        gaps = [b - a for a, b in itertools.pairwise([ready, *pings])]
        assert max(gaps) < WATCHDOG_S, f"systemd would have killed it: {max(gaps):.1f} s"

    with NotifySocket() as notify:
        monkeypatch.setenv("NOTIFY_SOCKET", notify.path)
        monkeypatch.setenv("WATCHDOG_USEC", str(int(WATCHDOG_S * 1_000_000)))
        asyncio.run(scenario(notify))
