"""The collector against simulated meters over real UDP and a real edge database."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import psycopg
from psycopg import AsyncConnection

from appliance.bacnet.client import BacpypesClient, ClientConfig
from appliance.bacnet.simulator import SimMeterSpec, meters_document, run_simulators
from appliance.collector.daemon import Collector, next_tick
from appliance.settings import load_settings

_ports = itertools.count(48100)


def free_port() -> int:
    return next(_ports)


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
        }
    )
    client = BacpypesClient(
        ClientConfig(local_address=f"127.0.0.1:{free_port()}", timeout_base_s=0.3, retries=0)
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
        SimMeterSpec(device_instance=2001, port=free_port(), points=20),
        # small APDU, no segmentation: needs chunked ReadPropertyMultiple
        SimMeterSpec(
            device_instance=2002, port=free_port(), points=20, max_apdu=128, segmentation=False
        ),
        # no ReadPropertyMultiple at all: ReadProperty per point
        SimMeterSpec(device_instance=2003, port=free_port(), points=6, reject_rpm=True),
        # one point answers unknown-object
        SimMeterSpec(
            device_instance=2004,
            port=free_port(),
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
    spec = SimMeterSpec(device_instance=2101, port=free_port(), points=4)
    other = SimMeterSpec(device_instance=2102, port=free_port(), points=4)
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
    spec = SimMeterSpec(device_instance=2201, port=free_port(), points=3)
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
    first = SimMeterSpec(device_instance=2301, port=free_port(), points=3)
    later = SimMeterSpec(device_instance=2302, port=free_port(), points=3)
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
            SimMeterSpec(device_instance=2400 + i, port=free_port(), points=2), latency_ms=250
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
