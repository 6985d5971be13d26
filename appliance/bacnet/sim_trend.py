"""A simulated meter's trend logs: one TrendLog per point, logging its present-value every
``interval_s``, holding ``history_s`` of records, answering ReadRange by time.

The records are not stored: record k is at ``k * interval_s`` (POSIX time) and its value comes
from the meter model at that time (:mod:`appliance.bacnet.sim_model`), so a week of history for
hundreds of points costs nothing, and moving the meter's clock (a test's "an hour later") moves
its history with it.
"""

from __future__ import annotations

import dataclasses
import math
from datetime import UTC, datetime
from typing import Any

from bacpypes3.basetypes import (  # type: ignore[import-untyped]
    DeviceObjectPropertyReference,
)
from bacpypes3.local.object import Object as LocalObject  # type: ignore[import-untyped]
from bacpypes3.object import TrendLogObject  # type: ignore[import-untyped]

from appliance.bacnet import readrange
from appliance.bacnet.sim_model import MeterModel


class SimTrendLog(LocalObject, TrendLogObject):  # type: ignore[misc]
    """The TrendLog object as read by ReadProperty (what it logs, how often); its log-buffer is
    answered by :meth:`TrendHistory.answer`, not through bacpypes3."""


def trend_log_object(instance: int, point_object_id: str, interval_s: int, size: int) -> Any:
    return SimTrendLog(
        objectIdentifier=("trend-log", instance),
        objectName=f"trend_{instance}",
        logDeviceObjectProperty=DeviceObjectPropertyReference(
            objectIdentifier=point_object_id, propertyIdentifier="present-value"
        ),
        logInterval=interval_s * 100,  # hundredths of a second
        enable=True,
        stopWhenFull=False,
        bufferSize=size,
        recordCount=size,
        totalRecordCount=size,
        loggingType="polled",
        statusFlags=[0, 0, 0, 0],
        reliability="noFaultDetected",
    )


@dataclasses.dataclass(frozen=True)
class TrendHistory:
    interval_s: int
    history_s: int

    def window(self, now: float) -> tuple[int, int]:
        """The first and last record index held at ``now``."""
        last = math.floor(now / self.interval_s)
        return last - self.history_s // self.interval_s + 1, last

    def records(
        self, model: MeterModel, name: str, now: float, since: datetime, count: int
    ) -> tuple[list[tuple[int, datetime, float]], bool]:
        """ReadRange by time: up to ``count`` records after ``since`` (count > 0), or before it
        (count < 0), oldest first; and whether more lie beyond them."""
        first, last = self.window(now)
        ref = since.timestamp() / self.interval_s
        if count > 0:
            start = max(first, math.floor(ref) + 1)
            stop = min(last, start + count - 1)
            indexes = range(start, stop + 1)
            more = stop < last
        else:
            stop = min(last, math.ceil(ref) - 1)
            start = max(first, stop + count + 1)
            indexes = range(start, stop + 1)
            more = start > first
        out = []
        for k in indexes:
            t = float(k * self.interval_s)
            values = model.sample_at(t, noise=False)
            value = values.get(name, 3.0 + 0.5 * math.sin(t / 600.0))
            out.append((k, datetime.fromtimestamp(t, UTC), value))
        return out, more

    def answer(
        self, model: MeterModel, name: str, instance: int, request: bytes, *, now: float, limit: int
    ) -> bytes:
        """The ReadRange-ACK's service data for a decoded-able request, within ``limit`` bytes."""
        _, _, _, since, count = readrange.decode_request(request)
        fit = max(1, (limit - readrange.ACK_OVERHEAD) // readrange.RECORD_BYTES)
        count = max(-fit, min(fit, count))
        records, more = self.records(model, name, now, since, count)
        first, last = self.window(now)
        return readrange.encode_ack(
            instance,
            [(ts, value) for _, ts, value in records],
            first_item=bool(records) and records[0][0] == first,
            last_item=bool(records) and records[-1][0] == last,
            more=more,
            first_sequence=(records[0][0] % 2**32) if records else 0,
        )
