"""Trend-log backfill: the readings a meter kept while the collector could not poll it.

A gap opens when the collector starts (from each meter's last reading to the start) and when a
meter answers again after being unreachable or giving no values; it is a ``backfill_gaps`` row,
written in the same transaction as what opened it. Filling one reads each point's trend log
(the device says which trend log records which point) with ReadRange by time, and writes the
records as ordinary readings marked ``backfilled`` together with the gap's deletion, in one
transaction: a crash in between leaves the gap for the next start, never half of it. Central's
natural key makes any repeat harmless.

It runs beside the poll loop, never in its way, and never feeds the watchdog.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from datetime import datetime, timedelta
from typing import Any

from psycopg import AsyncConnection

from appliance.bacnet.device import DeviceClient, DeviceError, PointRef
from appliance.collector.meters import PolledMeter
from common.logs import fields

logger = logging.getLogger(__name__)

RETRY_S = 60.0  # a meter that would not give its trend logs is asked again after this
METERS_AT_ONCE = 4

_START_GAPS = """
INSERT INTO backfill_gaps (meter_id, since, until)
SELECT m.id,
       greatest(coalesce(s.last_reading_at, %(oldest)s), %(oldest)s,
                (SELECT max(g.until) FROM backfill_gaps g WHERE g.meter_id = m.id)),
       %(now)s
FROM meters m LEFT JOIN meter_status s ON s.meter_id = m.id
WHERE m.active
  AND greatest(coalesce(s.last_reading_at, %(oldest)s), %(oldest)s,
               (SELECT max(g.until) FROM backfill_gaps g WHERE g.meter_id = m.id)) < %(now)s
  AND (NOT %(only_new)s OR (s.meter_id IS NULL
       AND NOT EXISTS (SELECT 1 FROM backfill_gaps g WHERE g.meter_id = m.id)))
"""

# a meter answering again: from its last reading (or the end of a gap still open) to now
REOPENED_GAP = """
INSERT INTO backfill_gaps (meter_id, since, until)
SELECT s.meter_id, since, %(read_at)s
FROM meter_status s,
     LATERAL (SELECT greatest(s.last_reading_at, %(oldest)s,
                              (SELECT max(g.until) FROM backfill_gaps g
                               WHERE g.meter_id = s.meter_id)) AS since) b
WHERE s.meter_id = %(meter_id)s AND %(state)s = 'reachable'
  AND s.state IN ('unreachable', 'no-values') AND since < %(read_at)s
"""

_PENDING = """
SELECT id, meter_id, since, until FROM backfill_gaps ORDER BY since, id
"""

_DONE = """
UPDATE meter_status SET last_reading_at = greatest(last_reading_at, %(last)s)
WHERE meter_id = %(meter_id)s
"""


@dataclasses.dataclass(frozen=True)
class Gap:
    gap_id: int
    meter_id: int
    since: datetime
    until: datetime


async def open_start_gaps(
    conn: AsyncConnection[Any], now: datetime, max_days: int, *, only_new: bool = False
) -> int:
    """A gap per active meter from its last reading to the collector's start, or with
    ``only_new`` per meter never polled yet (one configured while the collector runs: its
    history is read back too); returns how many."""
    if max_days <= 0:
        return 0
    oldest = now - timedelta(days=max_days)
    async with conn.transaction():
        cur = await conn.execute(_START_GAPS, {"now": now, "oldest": oldest, "only_new": only_new})
        return cur.rowcount


class Backfiller:
    """Fills the open gaps of the meters being polled; one pass per :meth:`run_once`."""

    def __init__(self, client: DeviceClient, max_days: int) -> None:
        self.client = client
        self.max_days = max_days
        self.readings = 0  # written by every pass so far
        self._trend_logs: dict[int, dict[PointRef, str]] = {}
        self._retry_at: dict[int, float] = {}  # meter id -> when to try its gaps again
        self._no_trend_logged: set[int] = set()
        self._write = asyncio.Lock()  # one transaction at a time on the pass's connection

    def meter_back(self, meter_id: int) -> None:
        """The meter answers again: its gaps are worth trying at once."""
        self._retry_at.pop(meter_id, None)

    def forget(self) -> None:
        """The meters changed: ask the devices again which trend logs they keep."""
        self._trend_logs.clear()
        self._no_trend_logged.clear()

    async def run_once(self, conn: AsyncConnection[Any], meters: list[PolledMeter]) -> int:
        """Fill every open gap of ``meters`` that is due; returns the readings written."""
        by_id = {m.meter_id: m for m in meters}
        rows = await (await conn.execute(_PENDING)).fetchall()
        now = time.monotonic()
        gaps = [
            Gap(*row) for row in rows if row[1] in by_id and self._retry_at.get(row[1], 0.0) <= now
        ]
        gate = asyncio.Semaphore(METERS_AT_ONCE)

        async def fill(gap: Gap) -> int:
            async with gate:
                return await self._fill(conn, by_id[gap.meter_id], gap)

        # one connection: the fills' reads from devices overlap, their writes take turns
        written = sum(await asyncio.gather(*(fill(g) for g in gaps)))
        self.readings += written
        return written

    async def _fill(self, conn: AsyncConnection[Any], meter: PolledMeter, gap: Gap) -> int:
        extra = fields(meter_id=meter.meter_id)
        try:
            logs = await self._logs_of(meter)
            points = [(p, logs[p.ref]) for p in meter.points if p.ref in logs]
            records = await asyncio.gather(
                *(
                    self.client.read_trend(meter.target, log, gap.since, gap.until)
                    for _, log in points
                )
            )
        except DeviceError as err:
            if meter.meter_id not in self._retry_at:
                logger.warning(
                    "meter %s: its trend logs could not be read back (%s); the gap %s .. %s is "
                    "tried again every %.0f min and when it answers again",
                    meter.external_id,
                    err,
                    gap.since.isoformat(),
                    gap.until.isoformat(),
                    RETRY_S / 60,
                    extra=extra,
                )
            self._retry_at[meter.meter_id] = time.monotonic() + RETRY_S
            return 0
        rows = [
            (meter.meter_id, point.point_id, ts, value)
            for (point, _), recs in zip(points, records, strict=True)
            for ts, value in recs
        ]
        async with self._write, conn.transaction(), conn.cursor() as cur:
            if rows:
                async with cur.copy(
                    "COPY readings (meter_id, point_id, ts, value, backfilled) FROM STDIN"
                ) as copy:
                    for row in rows:
                        await copy.write_row((*row, True))
                await cur.execute(
                    _DONE, {"meter_id": meter.meter_id, "last": max(r[2] for r in rows)}
                )
            await cur.execute("DELETE FROM backfill_gaps WHERE id = %s", (gap.gap_id,))
        self._retry_at.pop(meter.meter_id, None)
        if not points and meter.meter_id not in self._no_trend_logged:
            self._no_trend_logged.add(meter.meter_id)
            logger.info(
                "meter %s keeps no trend log of its points: gaps in its readings stay gaps",
                meter.external_id,
                extra=extra,
            )
        elif rows:
            logger.info(
                "meter %s: %d reading(s) read back from its trend logs for %s .. %s",
                meter.external_id,
                len(rows),
                gap.since.isoformat(),
                gap.until.isoformat(),
                extra=extra,
            )
        return len(rows)

    async def _logs_of(self, meter: PolledMeter) -> dict[PointRef, str]:
        logs = self._trend_logs.get(meter.meter_id)
        if logs is None:
            logs = self._trend_logs[meter.meter_id] = await self.client.trend_logs(meter.target)
        return logs
