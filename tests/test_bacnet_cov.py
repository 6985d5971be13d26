"""Change-of-value subscriptions over real UDP against the simulator: notifications carry the
values, a renewal is the same subscription again, and a silent device sends nothing."""

from __future__ import annotations

import asyncio

from appliance.bacnet.client import BacpypesClient, DeviceError
from appliance.bacnet.device import DeviceTarget, PointRef
from appliance.bacnet.simulator import SimMeterSpec, SimulatorHandle
from tests.ports import free_udp_port
from tests.test_bacnet_quirks import run_with

POWER = PointRef("analog-input", 2)  # power_kw: noisy, so it moves past covIncrement every refresh


def cov_spec(instance: int) -> SimMeterSpec:
    return SimMeterSpec(instance, free_udp_port(), points=6, cov_refresh_s=0.1)


async def until(check: object, seconds: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    while not check():  # type: ignore[operator]
        assert loop.time() < end, "timed out waiting"
        await asyncio.sleep(0.02)


def test_notifications_carry_values_without_polling() -> None:
    meter = cov_spec(2501)

    async def body(client: BacpypesClient, handle: SimulatorHandle) -> None:
        got: list[tuple[PointRef, float]] = []
        target = DeviceTarget(meter.address)
        for confirmed in (True, False):
            got.clear()
            await client.subscribe_cov(
                target, POWER, 60, confirmed, lambda ref, v: got.append((ref, v))
            )
            reads = (client.stats.rpm_requests, client.stats.rp_requests)  # its device info
            await until(lambda: len(got) >= 3)
            assert {ref for ref, _ in got} == {POWER}
            assert len({v for _, v in got}) > 1  # values that moved, not one value repeated
            assert all(20.0 * 0.75 - 1 < v < 100.0 * 1.25 + 1 for _, v in got)  # kW, plausible
            assert (client.stats.rpm_requests, client.stats.rp_requests) == reads  # no polls

    run_with([meter], body)


def test_renewal_keeps_one_subscription_and_silence_stops_notifications() -> None:
    meter = cov_spec(2502)

    async def body(client: BacpypesClient, handle: SimulatorHandle) -> None:
        got: list[float] = []
        target = DeviceTarget(meter.address)
        for _ in range(3):  # renewals: the same process id, so one subscription at the device
            await client.subscribe_cov(target, POWER, 2, True, lambda ref, v: got.append(v))
        sim = handle.meters[2502]
        subscriptions = [c for d in sim._cov_detections.values() for c in d.cov_subscriptions]
        assert len(subscriptions) == 1
        assert client.stats.cov_subscribe_requests == 3
        await until(lambda: len(got) >= 2)
        handle.set_cov_silent(2502, True)
        await asyncio.sleep(0.3)  # let a notification in flight land
        sent, count = sim.cov_notifications_sent, len(got)
        await asyncio.sleep(0.5)  # five refreshes with moving values
        assert (sim.cov_notifications_sent, len(got)) == (sent, count)
        handle.set_cov_silent(2502, False)
        await until(lambda: len(got) > count)

    run_with([meter], body)


def test_an_unknown_object_refuses_the_subscription() -> None:
    meter = cov_spec(2503)

    async def body(client: BacpypesClient, handle: SimulatorHandle) -> None:
        try:
            await client.subscribe_cov(
                DeviceTarget(meter.address), PointRef("analog-input", 99), 60, True, print
            )
        except DeviceError as err:
            assert "unknown-object" in str(err)
        else:
            raise AssertionError("a subscription to a missing object was accepted")

    run_with([meter], body)
