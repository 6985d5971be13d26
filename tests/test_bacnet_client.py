"""The BACnet client against simulated meters over real UDP on loopback (no mocks).

Every test uses its own client port and meter ports so tests never share a socket (bacpypes3 binds
with SO_REUSEPORT, so a clash would silently split traffic rather than fail).
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

import pytest

from appliance.bacnet.client import (
    BacpypesClient,
    ClientConfig,
    DeviceTarget,
    DeviceUnreachable,
    PointError,
    PointRef,
)
from appliance.bacnet.simulator import SimMeterSpec, SimulatorHandle, run_simulators
from appliance.bacnet.transport import DATAGRAM_COST, RECEIVE_BUFFER, in_flight_limit

POINTS = [PointRef("analog-input", i) for i in range(1, 21)]


def run_with(
    specs: Sequence[SimMeterSpec],
    client_port: int,
    body: Callable[[BacpypesClient, SimulatorHandle], Awaitable[None]],
    **config: float,
) -> None:
    async def main() -> None:
        handle = await run_simulators(specs)
        try:
            cfg = ClientConfig(local_address=f"127.0.0.1:{client_port}", **config)  # type: ignore[arg-type]
            async with BacpypesClient(cfg) as client:
                await body(client, handle)
        finally:
            handle.close()

    asyncio.run(asyncio.wait_for(main(), 60))


def target(spec: SimMeterSpec) -> DeviceTarget:
    return DeviceTarget(spec.address)


def test_reads_all_points_of_a_meter_in_one_request() -> None:
    spec = SimMeterSpec(2001, 47921, points=20)

    async def body(client: BacpypesClient, handle: SimulatorHandle) -> None:
        info = await client.read_device_info(target(spec))
        assert (info.device_instance, info.max_apdu, info.segmentation) == (2001, 1476, True)
        before = client.stats.rpm_requests
        values = await client.read_points(target(spec), POINTS)
        assert client.stats.rpm_requests - before == 1
        numbers = {k: v for k, v in values.items() if isinstance(v, float)}
        assert len(numbers) == 20, values
        assert 1000 < numbers[POINTS[0]] < 10_100  # energy_kwh
        assert 225 < numbers[POINTS[2]] < 235  # voltage_l1_v
        assert 49.9 < numbers[POINTS[5]] < 50.1  # frequency_hz

    run_with([spec], 47861, body)


def test_device_info_takes_one_request_and_points_one_more() -> None:
    spec = SimMeterSpec(2011, 47931)

    async def body(client: BacpypesClient, handle: SimulatorHandle) -> None:
        meter = DeviceTarget(spec.address, 2011)
        await client.read_points(meter, POINTS)
        await client.read_points(meter, POINTS)
        assert (client.stats.rpm_requests, client.stats.rp_requests) == (3, 0)
        assert handle.requests_seen(2011) == 3

    # known instance: no wildcard read of the device object either
    run_with([spec], 47872, body)


@pytest.mark.parametrize(("max_apdu", "port"), [(50, 47922), (128, 47923)])
def test_rpm_is_chunked_to_a_small_apdu_without_segmentation(max_apdu: int, port: int) -> None:
    spec = SimMeterSpec(2002, port, max_apdu=max_apdu, segmentation=False)

    async def body(client: BacpypesClient, handle: SimulatorHandle) -> None:
        await client.read_device_info(target(spec))  # its own request, not counted below
        before = client.stats.rpm_requests
        values = await client.read_points(target(spec), POINTS)
        sent = client.stats.rpm_requests - before
        assert sent > 1
        assert sent <= len(POINTS) // 2  # still batched, not one point per request
        assert all(isinstance(v, float) for v in values.values()), values

    run_with([spec], port - 60, body)


def test_falls_back_to_read_property_when_rpm_is_rejected_and_remembers() -> None:
    spec = SimMeterSpec(2004, 47924, refuse_rpm="reject")

    async def body(client: BacpypesClient, handle: SimulatorHandle) -> None:
        values = await client.read_points(target(spec), POINTS)
        assert all(isinstance(v, float) for v in values.values()), values
        rpm_after_first = client.stats.rpm_requests
        values = await client.read_points(target(spec), POINTS)
        assert all(isinstance(v, float) for v in values.values())
        assert client.stats.rpm_requests == rpm_after_first  # no RPM tried again

    run_with([spec], 47864, body)


def test_unknown_object_and_property_fail_only_their_own_points() -> None:
    spec = SimMeterSpec(
        2005,
        47925,
        error_points={"analog-input,3": "unknown-object", "analog-input,7": "unknown-property"},
    )

    async def body(client: BacpypesClient, handle: SimulatorHandle) -> None:
        values = await client.read_points(target(spec), POINTS)
        assert values[POINTS[2]] == PointError("unknown-object", "object")
        assert values[POINTS[6]] == PointError("unknown-property", "property")
        good = [v for k, v in values.items() if k not in (POINTS[2], POINTS[6])]
        assert len(good) == 18 and all(isinstance(v, float) for v in good)

    run_with([spec], 47865, body)


def test_a_request_of_only_unknown_objects_still_returns_per_point_errors() -> None:
    spec = SimMeterSpec(2006, 47926, points=6)

    async def body(client: BacpypesClient, handle: SimulatorHandle) -> None:
        missing = [PointRef("analog-input", 90), PointRef("analog-input", 91)]
        values = await client.read_points(target(spec), missing)
        assert {v.code for v in values.values() if isinstance(v, PointError)} == {"unknown-object"}

    run_with([spec], 47866, body)


def test_offline_meter_times_out_then_answers_again() -> None:
    spec = SimMeterSpec(2007, 47927)

    async def body(client: BacpypesClient, handle: SimulatorHandle) -> None:
        await client.read_points(target(spec), POINTS)
        handle.set_offline(2007, True)
        with pytest.raises(DeviceUnreachable):
            await client.read_points(target(spec), POINTS)
        handle.set_offline(2007, False)
        values = await client.read_points(target(spec), POINTS)
        assert all(isinstance(v, float) for v in values.values())

    run_with([spec], 47867, body, timeout_base_s=0.3, retries=0)


def test_kwh_only_increases_across_reads() -> None:
    spec = SimMeterSpec(2008, 47928)
    energy = [PointRef("analog-input", 1)]

    async def body(client: BacpypesClient, handle: SimulatorHandle) -> None:
        readings = []
        for _ in range(4):
            value = (await client.read_points(target(spec), energy))[energy[0]]
            assert isinstance(value, float)
            readings.append(value)
            await asyncio.sleep(0.3)
        assert readings == sorted(readings) and readings[-1] > readings[0]

    run_with([spec], 47868, body)


def test_device_found_by_instance_with_directed_who_is() -> None:
    spec = SimMeterSpec(2009, 47929)

    async def body(client: BacpypesClient, handle: SimulatorHandle) -> None:
        by_instance = DeviceTarget(device_instance=2009)
        values = await client.read_points(by_instance, POINTS[:3])
        assert all(isinstance(v, float) for v in values.values())
        info = await client.read_device_info(by_instance)
        assert info.address == spec.address

    # Loopback cannot broadcast across ports, so the Who-Is goes to the meter's address.
    run_with([spec], 47869, body, who_is_address=spec.address)  # type: ignore[arg-type]


def test_discovery_reads_object_list_names_and_units_from_a_small_apdu_device() -> None:
    spec = SimMeterSpec(2010, 47930, points=8, max_apdu=128, segmentation=False)

    async def body(client: BacpypesClient, handle: SimulatorHandle) -> None:
        found = await client.who_is(2010, 2010, spec.address)
        assert [d.device_instance for d in found] == [2010]
        objects = (await client.read_object_list(target(spec))).objects
        assert objects[0] == "device,2010" and "analog-input,8" in objects
        described = await client.describe_objects(target(spec), ["analog-input,1"])
        assert (described[0].name, described[0].units) == ("energy_kwh", "kilowatt-hours")

    run_with([spec], 47870, body)


def test_many_meters_with_latency_are_read_concurrently() -> None:
    specs = [SimMeterSpec(2100 + i, 47940 + i, latency_ms=50) for i in range(10)]

    async def body(client: BacpypesClient, handle: SimulatorHandle) -> None:
        targets = [target(s) for s in specs]
        await asyncio.gather(*(client.read_device_info(t) for t in targets))
        loop = asyncio.get_running_loop()
        start = loop.time()
        results = await asyncio.gather(*(client.read_points(t, POINTS) for t in targets))
        elapsed = loop.time() - start
        assert all(isinstance(v, float) for r in results for v in r.values())
        assert elapsed < 0.5  # 10 x 50 ms serially would be >= 0.5 s

    run_with(specs, 47871, body)


def test_socket_holds_a_whole_burst_of_answers_and_in_flight_is_bounded_by_it() -> None:
    """With the kernel's default buffer (~208 KiB) 200 answers arriving at once overflow it and
    are dropped silently (each then costs a timeout and a retry)."""

    async def body(client: BacpypesClient, handle: SimulatorHandle) -> None:
        (link_layer,) = client.app.link_layers.values()
        sock = link_layer.server.local_transport.get_extra_info("socket")
        capacity = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        rmem_max = int(Path("/proc/sys/net/core/rmem_max").read_text())
        forced = os.geteuid() == 0
        assert capacity // 2 >= (RECEIVE_BUFFER if forced else min(RECEIVE_BUFFER, rmem_max))
        assert client.max_in_flight == min(1000, capacity // DATAGRAM_COST)

    run_with([], 47873, body, max_in_flight=1000)


def test_in_flight_limit_keeps_answers_within_the_buffer() -> None:
    assert in_flight_limit(212_992, 1000) == 212_992 // DATAGRAM_COST
    assert in_flight_limit(8 * 1024 * 1024, 64) == 64
    assert in_flight_limit(0, 64) == 8  # never starve the poll loop entirely


def test_client_binds_the_default_wildcard_address_with_a_prefix() -> None:
    """The setting's default form, 0.0.0.0/PREFIX:PORT, binds (it used to fail on the prefix)."""
    spec = SimMeterSpec(2012, 47932, points=3)

    async def main() -> None:
        handle = await run_simulators([spec])
        try:
            config = ClientConfig(local_address="0.0.0.0/24:47874")
            async with BacpypesClient(config) as client:
                values = await client.read_points(target(spec), POINTS[:3])
                assert all(isinstance(v, float) for v in values.values()), values
        finally:
            handle.close()

    asyncio.run(asyncio.wait_for(main(), 60))
