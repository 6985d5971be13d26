"""One poll cycle: every meter read concurrently with a bound, each meter's outcome kept apart so
one misbehaving device or point never costs the others their readings."""

from __future__ import annotations

import asyncio
import dataclasses
import math
from collections.abc import Callable
from datetime import UTC, datetime

from appliance.bacnet.device import DeviceClient, DeviceError, PointError
from appliance.collector.meters import PolledMeter

# What a meter's state means, for people: the local UI, MCP, the heartbeat and central show these.
REACHABLE = "reachable"  # it answered and gave values
NO_VALUES = "no-values"  # it answered, but not one of its points gave a value
UNREACHABLE = "unreachable"  # no answer at all


@dataclasses.dataclass(frozen=True)
class MeterResult:
    meter: PolledMeter
    read_at: datetime
    values: dict[int, float]  # point_id -> value
    point_errors: dict[str, str]  # point name -> why it has no value
    error: str | None = None  # the device as a whole did not answer

    @property
    def reachable(self) -> bool:
        """The device answered (whether or not it gave values)."""
        return self.error is None

    @property
    def state(self) -> str:
        if self.error is not None:
            return UNREACHABLE
        if not self.values and self.meter.points:
            return NO_VALUES
        return REACHABLE

    @property
    def problem(self) -> str | None:
        """Why the meter has no readings this cycle, in one line; None when it has."""
        if self.error is not None:
            return self.error
        if self.state == NO_VALUES:
            return "answers but gave no value: " + "; ".join(
                f"{name}: {why}" for name, why in sorted(self.point_errors.items())
            )
        return None


Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


async def poll_meter(
    client: DeviceClient, meter: PolledMeter, clock: Clock = utc_now
) -> MeterResult:
    refs = [p.ref for p in meter.points]
    try:
        answer = await client.read_points(meter.target, refs)
    except DeviceError as err:
        return MeterResult(meter, clock(), {}, {}, str(err))
    read_at = clock()
    values: dict[int, float] = {}
    errors: dict[str, str] = {}
    for point in meter.points:
        value = answer.get(point.ref, PointError("missing", "not in the answer"))
        if isinstance(value, PointError):
            errors[point.name] = str(value)
        elif not math.isfinite(value):
            errors[point.name] = f"not-a-number: device sent {value}"
        else:
            values[point.point_id] = value
    return MeterResult(meter, read_at, values, errors)


async def poll_all(
    client: DeviceClient,
    meters: list[PolledMeter],
    concurrency: int,
    deadline_s: float,
    clock: Clock = utc_now,
) -> list[MeterResult]:
    """Poll every meter, at most ``concurrency`` at once. Meters not done by ``deadline_s`` are
    reported as overrun instead of delaying the cycle's commit."""
    gate = asyncio.Semaphore(concurrency)

    async def guarded(meter: PolledMeter) -> MeterResult:
        async with gate:
            return await poll_meter(client, meter, clock)

    tasks = [asyncio.ensure_future(guarded(m)) for m in meters]
    if not tasks:
        return []
    try:
        await asyncio.wait(tasks, timeout=deadline_s)
    finally:
        for task in tasks:
            task.cancel()  # a no-op for finished ones; on SIGTERM it abandons the rest
    results = []
    for meter, task in zip(meters, tasks, strict=True):
        if task.done() and not task.cancelled() and task.exception() is None:
            results.append(task.result())
        else:
            reason = (
                f"unexpected failure: {task.exception()!r}"
                if task.done() and not task.cancelled() and task.exception() is not None
                else f"no answer within the {deadline_s:.0f} s poll cycle"
            )
            results.append(MeterResult(meter, clock(), {}, {}, reason))
    return results
