"""The meters to poll, as the edge database describes them right now."""

from __future__ import annotations

import dataclasses
import logging
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection

from appliance.bacnet.device import DeviceTarget, PointRef
from common.logs import fields

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class PolledPoint:
    point_id: int
    name: str
    ref: PointRef
    unit: str


@dataclasses.dataclass(frozen=True)
class PolledMeter:
    meter_id: int
    external_id: str
    target: DeviceTarget
    points: tuple[PolledPoint, ...]
    rpm_refused_at: datetime | None = None  # learned by an earlier run: read it point by point
    cov: bool = False  # subscribed to changes of value; polled only when notifications stop


_QUERY = """
SELECT m.id, m.external_id, m.address, m.device_instance, s.rpm_refused_at, m.cov,
       p.id, p.name, p.object_type, p.object_instance, p.property, p.unit
FROM meters m JOIN meter_points p ON p.meter_id = m.id
LEFT JOIN meter_status s ON s.meter_id = m.id
WHERE m.active AND p.active
ORDER BY m.id, p.id
"""


async def load_meters(conn: AsyncConnection[Any]) -> list[PolledMeter]:
    """Active meters with their active points; a point the database holds but BACnet cannot name
    is skipped with a warning rather than stopping every other meter."""
    rows = await (await conn.execute(_QUERY)).fetchall()
    meters: dict[int, PolledMeter] = {}
    points: dict[int, list[PolledPoint]] = {}
    for row in rows:
        meter_id, external_id, address, instance, refused, cov = row[:6]
        point_id, name, otype, oinst, prop, unit = row[6:]
        if meter_id not in meters:
            meters[meter_id] = PolledMeter(
                meter_id, external_id, DeviceTarget(address, instance), (), refused, cov
            )
            points[meter_id] = []
        try:
            ref = PointRef.parse(f"{otype},{oinst}", prop)
        except ValueError as err:
            logger.warning(
                "meter %s point %s skipped: %s; fix the meter's configuration",
                external_id,
                name,
                err,
                extra=fields(meter_id=meter_id),
            )
            continue
        points[meter_id].append(PolledPoint(point_id, name, ref, unit))
    return [
        dataclasses.replace(meter, points=tuple(points[meter_id]))
        for meter_id, meter in meters.items()
        if points[meter_id]
    ]
