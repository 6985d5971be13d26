"""Change-of-value subscriptions for meters that opt in (``"cov": true``): their points are
subscribed to instead of polled, and each notification becomes a reading that goes through the
same store and sync path as a polled one (one row per meter, point and timestamp).

The loop drives it once per cycle (:meth:`CovWatch.plan`): a point never subscribed, refused,
or silent for more than two poll intervals is polled in that cycle and subscribed to again;
a subscription past half its lifetime is renewed. Time is the ``monotonic`` clock given, so a
test moves it instead of sleeping. The journal gets one line when a meter's notifications stop
(it falls back to polling) and one when they resume, never one per cycle.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable

from appliance.bacnet.device import DeviceClient, DeviceError
from appliance.collector.meters import PolledMeter, PolledPoint
from appliance.collector.poll import Clock, MeterResult, utc_now
from common.logs import fields

logger = logging.getLogger(__name__)

SILENCE_POLL_INTERVALS = 2  # no notification for longer than this many poll intervals: poll


@dataclasses.dataclass
class _Point:
    meter: PolledMeter
    point: PolledPoint
    heard_at: float  # monotonic time of its last notification (or of when it was first seen)
    subscribed_at: float | None = None  # None: not subscribed (never, refused, or lost)


class CovWatch:
    def __init__(
        self,
        client: DeviceClient,
        poll_interval_s: float,
        lifetime_s: int,
        confirmed: bool,
        *,
        clock: Clock = utc_now,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.silence_s = SILENCE_POLL_INTERVALS * poll_interval_s
        self.lifetime_s = lifetime_s
        self.confirmed = confirmed
        self.clock = clock  # the readings' timestamps
        self.monotonic = monotonic
        self._points: dict[tuple[int, int], _Point] = {}
        self._falling_back: set[int] = set()  # meters whose notifications stopped
        self._refused: dict[int, str] = {}  # meter -> why its subscription failed, logged once
        self._received: list[MeterResult] = []

    def plan(self, meters: list[PolledMeter]) -> tuple[list[PolledMeter], list[_Point]]:
        """What this cycle polls (every meter without COV, and the points of COV meters not
        covered by notifications) and which points it subscribes to (new, lost or renewed)."""
        now = self.monotonic()
        wanted = {(m.meter_id, p.point_id) for m in meters if m.cov for p in m.points}
        for key in set(self._points) - wanted:
            del self._points[key]  # a meter or point gone from the configuration
        polled: list[PolledMeter] = []
        subscribe: list[_Point] = []
        for meter in meters:
            if not meter.cov:
                polled.append(meter)
                continue
            to_poll: list[PolledPoint] = []
            silent = 0
            for point in meter.points:
                state = self._points.get((meter.meter_id, point.point_id))
                if state is None or state.meter != meter:  # new, or its meter was reconfigured
                    state = _Point(meter, point, heard_at=now)
                    self._points[(meter.meter_id, point.point_id)] = state
                quiet = now - state.heard_at > self.silence_s
                silent += quiet
                if state.subscribed_at is None or quiet:
                    to_poll.append(point)
                    subscribe.append(state)
                elif now - state.subscribed_at >= self.lifetime_s / 2:
                    subscribe.append(state)  # renewed well before it runs out at the device
            if silent == len(meter.points) and meter.meter_id not in self._falling_back:
                self._falling_back.add(meter.meter_id)
                logger.warning(
                    "meter %s: no change-of-value notification for more than %.0f s (2x the "
                    "poll interval); polling its points and subscribing again",
                    meter.external_id,
                    self.silence_s,
                    extra=fields(meter_id=meter.meter_id),
                )
            if to_poll:
                polled.append(dataclasses.replace(meter, points=tuple(to_poll)))
        return polled, subscribe

    async def subscribe(self, points: list[_Point]) -> None:
        """Subscribe (or renew) concurrently; each failure leaves its point polled next cycle."""
        await asyncio.gather(*(self._subscribe(p) for p in points))

    async def _subscribe(self, state: _Point) -> None:
        meter = state.meter
        try:
            await self.client.subscribe_cov(
                meter.target,
                state.point.ref,
                self.lifetime_s,
                self.confirmed,
                lambda _ref, value: self._heard(state, value),
            )
        except DeviceError as err:
            state.subscribed_at = None
            if self._refused.get(meter.meter_id) != str(err):
                self._refused[meter.meter_id] = str(err)
                logger.warning(
                    "meter %s: change-of-value subscription failed (%s); its points are polled "
                    "until it succeeds",
                    meter.external_id,
                    err,
                    extra=fields(meter_id=meter.meter_id),
                )
            return
        state.subscribed_at = self.monotonic()
        self._refused.pop(meter.meter_id, None)

    def _heard(self, state: _Point, value: float) -> None:
        meter = state.meter
        if self._points.get((meter.meter_id, state.point.point_id)) is not state:
            return  # a late notification for a point reconfigured or removed since
        state.heard_at = self.monotonic()
        self._received.append(MeterResult(meter, self.clock(), {state.point.point_id: value}, {}))
        if meter.meter_id in self._falling_back:
            self._falling_back.discard(meter.meter_id)
            logger.info(
                "meter %s: change-of-value notifications again; polling stops",
                meter.external_id,
                extra=fields(meter_id=meter.meter_id),
            )

    def take(self) -> list[MeterResult]:
        """The readings notified since the last call, oldest first."""
        received, self._received = self._received, []
        return received

    @property
    def falling_back(self) -> frozenset[int]:
        return frozenset(self._falling_back)
