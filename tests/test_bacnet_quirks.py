"""Devices that do not behave like the project's own simulator: each quirk seen in the field is a
simulator switch, and the client and discovery are tested against it over real UDP on loopback."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta

import pytest

from appliance.bacnet.client import BacpypesClient, ClientConfig
from appliance.bacnet.device import DeviceTarget, PointError, PointRef
from appliance.bacnet.simulator import SimMeterSpec, SimulatorHandle, run_simulators
from appliance.discover import discover
from tests.ports import free_udp_port

POINTS = [PointRef("analog-input", i) for i in range(1, 7)]


class Clock:
    """The client's wall clock, moved by the test instead of by sleeping."""

    def __init__(self) -> None:
        self.now = datetime(2026, 12, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def run_with(
    specs: Sequence[SimMeterSpec],
    body: Callable[[BacpypesClient, SimulatorHandle], Awaitable[None]],
    clock: Clock | None = None,
    **config: float,
) -> None:
    async def main() -> None:
        handle = await run_simulators(specs)
        try:
            cfg = ClientConfig(local_address=f"127.0.0.1:{free_udp_port()}", **config)  # type: ignore[arg-type]
            async with BacpypesClient(cfg, clock=clock) as client:
                await body(client, handle)
        finally:
            handle.close()

    asyncio.run(asyncio.wait_for(main(), 60))


def spec(instance: int, **quirks: object) -> SimMeterSpec:
    return SimMeterSpec(instance, free_udp_port(), points=6, **quirks)  # type: ignore[arg-type]


@pytest.mark.parametrize("refusal", ["reject", "error", "abort"])
def test_a_device_refusing_rpm_is_read_with_read_property(refusal: str) -> None:
    meter = spec(2401, refuse_rpm=refusal)

    async def body(client: BacpypesClient, handle: SimulatorHandle) -> None:
        target = DeviceTarget(meter.address)
        values = await client.read_points(target, POINTS)
        assert all(isinstance(v, float) for v in values.values()), values
        assert client.rpm_refused_since(target) is not None
        rpm = client.stats.rpm_requests
        values = await client.read_points(target, POINTS)
        assert all(isinstance(v, float) for v in values.values()), values
        assert client.stats.rpm_requests == rpm, "the refusal is remembered, RPM not tried again"

    run_with([meter], body)


def test_a_refused_rpm_is_probed_again_later_and_used_once_accepted() -> None:
    meter = spec(2402, refuse_rpm="error")
    clock = Clock()

    async def body(client: BacpypesClient, handle: SimulatorHandle) -> None:
        target = DeviceTarget(meter.address)
        await client.read_points(target, POINTS)
        assert client.rpm_refused_since(target) == clock.now
        # the device's firmware is upgraded; RPM is tried again only once the re-probe is due
        handle.meters[2402].spec = SimMeterSpec(2402, meter.port, points=6)
        rpm = client.stats.rpm_requests
        clock.now += timedelta(hours=1)
        await client.read_points(target, POINTS)
        assert client.stats.rpm_requests == rpm
        clock.now += timedelta(seconds=client.config.rpm_reprobe_s)
        values = await client.read_points(target, POINTS)
        assert all(isinstance(v, float) for v in values.values()), values
        assert client.stats.rpm_requests == rpm + 1
        assert client.rpm_refused_since(target) is None

    run_with([meter], body, clock)


def test_a_refusal_learned_before_a_restart_is_not_probed_again_at_once() -> None:
    meter = spec(2403, refuse_rpm="abort")
    clock = Clock()

    async def body(client: BacpypesClient, handle: SimulatorHandle) -> None:
        target = DeviceTarget(meter.address)
        client.assume_rpm_refused(target, clock.now - timedelta(minutes=5))
        values = await client.read_points(target, POINTS)
        assert all(isinstance(v, float) for v in values.values()), values
        assert client.stats.rpm_requests == 0
        assert client.rpm_refused_since(target) == clock.now - timedelta(minutes=5)

    run_with([meter], body, clock)


def test_one_bad_object_that_spoils_an_rpm_does_not_turn_rpm_off() -> None:
    """An Error for the whole request may be one unknown object, not a refused service."""
    meter = spec(2404, error_points={"analog-input,2": "unknown-object"})

    async def body(client: BacpypesClient, handle: SimulatorHandle) -> None:
        target = DeviceTarget(meter.address)
        values = await client.read_points(target, POINTS)
        assert isinstance(values[POINTS[1]], PointError)
        assert sum(isinstance(v, float) for v in values.values()) == 5
        assert client.rpm_refused_since(target) is None

    run_with([meter], body)


def test_object_list_length_answered_with_the_whole_list() -> None:
    meter = spec(2405, whole_object_list=True)

    async def body(client: BacpypesClient, handle: SimulatorHandle) -> None:
        objects = (await client.read_object_list(DeviceTarget(meter.address))).objects
        assert objects[0] == "device,2405"
        assert [o for o in objects if o.startswith("analog-input")] == [
            f"analog-input,{i}" for i in range(1, 7)
        ]

    run_with([meter], body)


def test_discovery_survives_every_quirk_and_reports_what_it_could_not_read(
    caplog: pytest.LogCaptureFixture,
) -> None:
    meters = [
        spec(2411, whole_object_list=True),
        spec(2412, refuse_rpm="error"),
        spec(2413, refuse_rpm="abort", unknown_properties=("units", "description")),
        spec(2414, max_apdu=50, segmentation=False),
        spec(2415, latency_ms=400.0),
        spec(2416, unknown_properties=("vendor-name", "segmentation-supported", "units")),
    ]

    async def body(client: BacpypesClient, handle: SimulatorHandle) -> None:
        found = []
        for meter in meters:  # loopback has no broadcast: one directed Who-Is per meter
            found += await discover(
                client, meter.device_instance, meter.device_instance, meter.address
            )
        assert [m.device_instance for m in found] == [m.device_instance for m in meters]
        assert all(len(m.points) == 6 for m in found), found
        by_id = {m.device_instance: m for m in found}
        assert {p.unit for p in by_id[2411].points} >= {"kWh", "V"}
        assert {p.unit for p in by_id[2413].points} == {""}

    with caplog.at_level(logging.WARNING, logger="appliance.discover"):
        run_with(meters, body, timeout_base_s=1.0)
    unread = [r.getMessage() for r in caplog.records if "could not read" in r.getMessage()]
    assert any("2413" in line and "units" in line for line in unread), unread
    assert any("2416" in line and "vendor-name" in line for line in unread), unread
    assert not any("2411" in line for line in unread), unread


def test_broadcast_discovery_without_a_prefix_is_one_line_naming_the_setting(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from appliance import discover as discover_command

    code = discover_command.main([f"--local-address=127.0.0.1:{free_udp_port()}", "--timeout=0.2"])
    assert code == 1
    err = capsys.readouterr()
    output = err.out + err.err
    assert "Traceback" not in output and "RuntimeError" not in output, output
    lines = [line for line in output.splitlines() if "IP/PREFIX" in line]
    assert len(lines) == 1 and "--local-address" in lines[0], output


def test_another_device_at_the_address_is_not_taken_for_one_refusing_rpm() -> None:
    """An Error for the device object may say "no such device here", not "no RPM": the points
    at the address are still read with ReadPropertyMultiple."""
    meter = spec(2421)

    async def body(client: BacpypesClient, handle: SimulatorHandle) -> None:
        wrong = DeviceTarget(meter.address, 2999)
        values = await client.read_points(wrong, POINTS)
        assert all(isinstance(v, float) for v in values.values()), values
        assert client.rpm_refused_since(wrong) is None
        rpm = client.stats.rpm_requests
        await client.read_points(wrong, POINTS)
        assert client.stats.rpm_requests == rpm + 1

    run_with([meter], body)
