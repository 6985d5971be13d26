"""The collector's poll loop: one cycle per clock tick, its readings committed in one transaction.

It depends on the device interface (:mod:`appliance.bacnet.device`), never on the BACnet library
(DESIGN convention 5). WATCHDOG=1 comes from this loop's own progress: it is sent while the loop
waits for the next tick, for meters (bounded by the cycle's deadline) or for the edge database to
come back (bounded by the connect timeout), and never from a side task, so only a loop that is
really stuck (e.g. a write hanging) stops feeding it and gets restarted.

When the edge database goes away, or its disk is full, the loop keeps polling and holds the
cycles in memory (up to :data:`HELD_READINGS_MAX` readings), then writes them oldest first once
it is back, each cycle in its own transaction as usual. Each outage is one journal line when it
starts and one when it ends (:mod:`common.failures`), however many cycles it lasts.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import logging
import time
from collections.abc import Awaitable
from datetime import datetime
from typing import Any, Protocol, TypeVar

import psycopg
from psycopg import AsyncConnection

from appliance import edge_counters
from appliance.bacnet.device import DeviceClient, DeviceTarget
from appliance.collector.backfill import Backfiller, open_start_gaps
from appliance.collector.cov import CovWatch
from appliance.collector.meters import PolledMeter, load_meters
from appliance.collector.poll import (
    NO_VALUES,
    REACHABLE,
    UNREACHABLE,
    Clock,
    MeterResult,
    poll_all,
    utc_now,
)
from appliance.collector.store import write_cycle
from appliance.settings import ApplianceSettings
from common.failures import (
    DISK_FULL,
    EDGE_DATABASE_DOWN,
    METER_UNREACHABLE,
    Outages,
    database_mode,
    first_line,
)
from common.logs import fields
from common.systemd import Notifier

logger = logging.getLogger(__name__)

DB_RETRY_S = 5.0
DB_CONNECT_TIMEOUT_S = 5
# Readings held in memory while the edge database is away: 100 meters x 20 points for 50 poll
# cycles, about 15 MB. Past it the oldest cycle is dropped, counted in the journal.
HELD_READINGS_MAX = 100_000
_T = TypeVar("_T")


class ManagedClient(DeviceClient, Protocol):
    """A device client the collector owns: it binds the port at start, forgets a device whose
    configuration changed, and says what it learned of each device's ReadPropertyMultiple."""

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    def forget(self, target: DeviceTarget) -> None: ...

    def rpm_refused_since(self, target: DeviceTarget) -> datetime | None: ...

    def assume_rpm_refused(self, target: DeviceTarget, since: datetime) -> None: ...


def next_tick(now: float, interval: float) -> float:
    """The next clock-aligned cycle start: a 60 s interval polls at :00 of every minute."""
    return (now // interval + 1) * interval


class Collector:
    def __init__(
        self,
        settings: ApplianceSettings,
        client: ManagedClient,
        notifier: Notifier | None = None,
        clock: Clock = utc_now,
    ) -> None:
        self.settings = settings
        self.client = client
        self.notifier = notifier or Notifier()
        self.clock = clock  # the readings' timestamps (a test moves it instead of sleeping)
        self.backfill = Backfiller(client, settings.backfill_max_days)
        self.cov = CovWatch(
            client,
            settings.poll_interval_s,
            settings.cov_lifetime_s,
            settings.cov_confirmed,
            clock=clock,
        )
        self._backfill_task: asyncio.Future[None] | None = None
        self.stop = asyncio.Event()
        self._wake = asyncio.Event()
        self._reload = True
        self._meters: list[PolledMeter] = []
        self._states: dict[int, tuple[str, frozenset[tuple[str, str]]]] = {}
        self._paused: bool | None = None
        self._held: collections.deque[list[MeterResult]] = collections.deque()
        self.outages = Outages(logger)
        self._dropping = False  # the first drop of an outage was logged
        self.cycles = 0  # cycles committed to the edge database
        self.dropped_held = 0  # readings dropped because the database was away too long

    # ----- the watchdog

    @staticmethod
    def _ping_s() -> float:
        return Notifier.watchdog_interval_s() or 10.0

    async def _fed(self, work: Awaitable[_T]) -> _T:
        """Await bounded work (it has its own timeout or deadline), feeding the watchdog
        meanwhile: the loop is waiting, not stuck."""
        task = asyncio.ensure_future(work)
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=self._ping_s())
                self.notifier.watchdog()
                if done:
                    return task.result()
        finally:
            task.cancel()  # a no-op once done; on cancellation of this wait it stops the work

    async def _sleep(self, seconds: float, *, feed: bool = True) -> bool:
        """Sleep, feeding the watchdog when this is the loop's own wait; True when stop was
        asked for."""
        deadline = time.monotonic() + seconds
        while not self.stop.is_set():
            if feed:
                self.notifier.watchdog()
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            try:
                await asyncio.wait_for(self.stop.wait(), min(left, self._ping_s()))
            except TimeoutError:
                continue
        return True

    # ----- database

    async def _connect(self) -> AsyncConnection[Any]:
        # autocommit: reads see other units' changes at once; writes use explicit transactions
        return await AsyncConnection.connect(
            self.settings.database_url,
            autocommit=True,
            application_name="meterit-collector",
            connect_timeout=DB_CONNECT_TIMEOUT_S,
        )

    async def _connect_until_up(self) -> AsyncConnection[Any] | None:
        """A connection once the database answers; None when stop was asked for meanwhile."""
        while True:
            try:
                conn = await self._fed(self._connect())
            except psycopg.OperationalError as err:
                self.outages.failing(
                    EDGE_DATABASE_DOWN,
                    first_line(err),
                    f"the collector starts once it answers (tried every {DB_RETRY_S:g} s)",
                )
                self.notifier.status("waiting for the edge database")
                if await self._sleep(DB_RETRY_S):
                    return None
            else:
                self.outages.recovered(EDGE_DATABASE_DOWN, "the collector starts")
                return conn

    async def _reconnect(self, conn: AsyncConnection[Any] | None) -> AsyncConnection[Any] | None:
        """The connection, a new one if it was lost, or None while the database is away."""
        if conn is not None and not conn.closed:
            return conn
        try:
            conn = await self._fed(self._connect())
        except psycopg.OperationalError:
            return None
        self.outages.recovered(EDGE_DATABASE_DOWN, self._held_note("writing"))
        return conn

    async def _failed(
        self, conn: AsyncConnection[Any], err: psycopg.OperationalError
    ) -> AsyncConnection[Any] | None:
        """The connection to go on with after a failed read or write: kept when only the disk
        is full (the transaction rolled back; the next cycle tries again), else closed."""
        mode = database_mode(err)
        self.outages.failing(
            mode,
            first_line(err),
            f"polling goes on and readings are held in memory (up to {HELD_READINGS_MAX}) "
            "until they can be written",
        )
        if mode is DISK_FULL and not conn.closed:
            return conn
        with contextlib.suppress(psycopg.Error):
            await conn.close()
        return None

    async def _listen(self) -> None:
        """Wake the loop when meters change or collection is paused/resumed elsewhere. A side
        task: it never feeds the watchdog."""
        while not self.stop.is_set():
            try:
                conn = await AsyncConnection.connect(
                    self.settings.database_url,
                    autocommit=True,
                    application_name="meterit-collector",
                    connect_timeout=DB_CONNECT_TIMEOUT_S,
                )
                async with conn:
                    await conn.execute("LISTEN meters_changed")
                    await conn.execute("LISTEN collection_paused")
                    self._reload = True  # anything missed while not listening
                    async for note in conn.notifies():
                        if note.channel == "meters_changed":
                            self._reload = True
                        self._wake.set()
            except psycopg.OperationalError:
                await self._sleep(DB_RETRY_S, feed=False)

    # ----- the loop

    async def _wait_for_tick(self) -> None:
        target = next_tick(time.time(), self.settings.poll_interval_s)
        while not self.stop.is_set():
            self.notifier.watchdog()
            left = target - time.time()
            if left <= 0:
                return
            self._wake.clear()
            waiters = [
                asyncio.ensure_future(self.stop.wait()),
                asyncio.ensure_future(self._wake.wait()),
            ]
            _, pending = await asyncio.wait(
                waiters, timeout=min(left, self._ping_s()), return_when=asyncio.FIRST_COMPLETED
            )
            for task in pending:
                task.cancel()
            if self._wake.is_set() and self._paused:
                return  # a resume should not wait for the next tick to be seen

    async def run(self) -> None:
        """Poll until ``stop`` is set."""
        conn: AsyncConnection[Any] | None = await self._connect_until_up()
        if conn is None:
            return
        await self.client.start()  # binds the BACnet port or raises
        # what happened while the collector was not running is read back from trend logs
        opened = await open_start_gaps(conn, self.clock(), self.settings.backfill_max_days)
        if opened:
            logger.info(
                "%d meter(s) to read back from their trend logs since their last reading", opened
            )
        listener = asyncio.ensure_future(self._listen())
        self.notifier.ready("started")
        logger.info(
            "collector ready: polling every %d s, at most %d meters at once",
            self.settings.poll_interval_s,
            self.settings.poll_concurrency,
        )
        try:
            while not self.stop.is_set():
                conn = await self._cycle(conn)
                await self._wait_for_tick()
        finally:
            self.notifier.stopping()
            listener.cancel()
            if self._backfill_task is not None:
                self._backfill_task.cancel()  # its open transaction rolls back: gaps stay
            await self.client.close()
            if conn is not None:
                await conn.close()
            if self._held:
                logger.warning(
                    "collector stopped with %d reading(s) not written: the edge database was "
                    "unreachable",
                    self._held_count(),
                )
            logger.info("collector stopped")

    async def _cycle(self, conn: AsyncConnection[Any] | None) -> AsyncConnection[Any] | None:
        conn = await self._reconnect(conn)
        if conn is not None:
            try:
                await self._refresh(conn)
            except psycopg.OperationalError as err:
                conn = await self._failed(conn, err)
        if self._paused:
            self.notifier.status(f"collection paused; {len(self._meters)} meter(s) configured")
            return conn

        started = time.monotonic()
        deadline = max(1.0, self.settings.poll_interval_s * 0.9)
        polled, subscribe = self.cov.plan(self._meters)
        results, _ = await self._fed(
            asyncio.gather(
                poll_all(self.client, polled, self.settings.poll_concurrency, deadline, self.clock),
                self._subscribe(subscribe, deadline),
            )
        )
        if self.stop.is_set():
            logger.info("stopping: the cycle in flight is abandoned, nothing partial written")
            return conn
        # meters on change-of-value notifications and not polled count as reachable: their
        # notifications still come (else they would have been polled)
        seen = {r.meter.meter_id for r in results}
        alive = [
            MeterResult(dataclasses.replace(m, points=()), self.clock(), {}, {})
            for m in self._meters
            if m.cov and m.meter_id not in seen
        ]
        self._log_changes(results + alive)
        self._hold(
            results + alive + self.cov.take(), limit=conn is None or self.outages.active(DISK_FULL)
        )
        rows = 0
        if conn is not None:
            try:
                rows = await self._write_held(conn)
                await self._count_cycle(conn, time.monotonic() - started)
            except psycopg.OperationalError as err:
                conn = await self._failed(conn, err)
        self._report(results + alive, rows, time.monotonic() - started)
        if conn is not None:
            self._start_backfill()
        return conn

    async def _subscribe(self, points: list[Any], deadline: float) -> None:
        """COV subscriptions and renewals, bounded like the poll: one left unanswered is tried
        again next cycle (its point is polled meanwhile)."""
        if points:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.cov.subscribe(points), deadline)

    def _start_backfill(self) -> None:
        """One backfill pass beside the loop, unless one is still running."""
        if self.settings.backfill_max_days <= 0:
            return
        if self._backfill_task is None or self._backfill_task.done():
            self._backfill_task = asyncio.ensure_future(self._backfill_pass())

    async def _backfill_pass(self) -> None:
        try:
            async with await self._connect() as conn:
                await self.backfill.run_once(conn, self._meters)
        except psycopg.OperationalError as err:
            logger.info("backfill waits for the edge database (%s)", first_line(err))

    async def _refresh(self, conn: AsyncConnection[Any]) -> None:
        """The meter list when it changed, and the pause flag."""
        if self._reload:
            self._reload = False
            self._meters = await load_meters(conn)
            for meter in self._meters:
                # its address may have changed with its configuration: look it up afresh
                self.client.forget(meter.target)
                if meter.rpm_refused_at is not None:
                    self.client.assume_rpm_refused(meter.target, meter.rpm_refused_at)
            self.backfill.forget()
            if self.cycles or self._held:  # not the start: run() opened the start's gaps
                await open_start_gaps(
                    conn, self.clock(), self.settings.backfill_max_days, only_new=True
                )
            logger.info("polling %d meter(s)", len(self._meters))
        row = await (await conn.execute("SELECT collection_paused FROM appliance_state")).fetchone()
        paused = bool(row and row[0])
        if paused != self._paused:
            logger.info("collection %s", "paused" if paused else "running")
            self._paused = paused

    def _hold(self, results: list[MeterResult], *, limit: bool) -> None:
        """Keep the cycle until it is written; past the limit, while writes fail, drop the
        oldest (not when the database has just come back and everything is about to be
        written)."""
        self._held.append(results)
        while limit and self._held_count() > HELD_READINGS_MAX and len(self._held) > 1:
            dropped = sum(len(r.values) for r in self._held.popleft())
            self.dropped_held += dropped
            if not self._dropping:  # once per outage; the count is in STATUS= and at the end
                self._dropping = True
                logger.warning(
                    "readings could not be written for too long: dropping the oldest held cycles "
                    "to keep at most %d readings in memory (%d dropped so far)",
                    HELD_READINGS_MAX,
                    self.dropped_held,
                )

    def _held_note(self, verb: str) -> str:
        """What the recovery line says of the readings held meanwhile."""
        note = f"{verb} the {self._held_count()} reading(s) held meanwhile"
        if self._dropping:
            note += f"; {self.dropped_held} reading(s) dropped in all"
        return note

    def _held_count(self) -> int:
        return sum(len(r.values) for cycle in self._held for r in cycle)

    async def _write_held(self, conn: AsyncConnection[Any]) -> int:
        """Write the held cycles oldest first, each in its own transaction; a cycle leaves the
        memory only once committed."""
        rows = 0
        note = self._held_note("wrote")
        while self._held:
            rows += await write_cycle(
                conn, self._held[0], self._rpm_refused_at, self.settings.backfill_max_days
            )
            self._held.popleft()
            self.cycles += 1
        self.outages.recovered(DISK_FULL, note)
        self._dropping = False
        return rows

    @staticmethod
    async def _count_cycle(conn: AsyncConnection[Any], seconds: float) -> None:
        """One statement a cycle for /metrics: the cycle (poll and write) and how long it took.
        Per-meter points read and failed ride on the status upsert of ``write_cycle``."""
        params = edge_counters.record_params(edge_counters.cycle(seconds))
        await conn.execute(edge_counters.RECORD, params)

    def _rpm_refused_at(self, result: MeterResult) -> datetime | None:
        return self.client.rpm_refused_since(result.meter.target)

    def _report(self, results: list[MeterResult], rows: int, took_s: float) -> None:
        """The STATUS= line: the same states the local UI, MCP and central show."""
        states = collections.Counter(r.state for r in results)
        text = f"{states[REACHABLE]}/{len(results)} meters reachable"
        if states[NO_VALUES]:
            text += f", {states[NO_VALUES]} answer without values"
        if states[UNREACHABLE]:
            text += f", {states[UNREACHABLE]} unreachable"
        text += f"; {rows} readings in {took_s:.1f} s"
        if self._held:
            text += f"; edge database unwritable, {self._held_count()} readings held"
        if self.dropped_held:
            text += f", {self.dropped_held} dropped"
        self.notifier.status(text)

    def _log_changes(self, results: list[MeterResult]) -> None:
        """One line per meter whose health changed, never one per cycle per failing meter."""
        for result in results:
            meter = result.meter
            state = (result.state, frozenset(result.point_errors.items()))
            previous = self._states.get(meter.meter_id)
            self._states[meter.meter_id] = state
            if previous == state:
                continue
            extra = fields(meter_id=meter.meter_id)
            changed = previous is None or previous[0] != result.state
            if result.state == UNREACHABLE:
                self.outages.failing(
                    METER_UNREACHABLE,
                    f"{meter.external_id}, {result.error}",
                    meter_id=meter.meter_id,
                )
            elif self.outages.recovered(
                METER_UNREACHABLE, f"{meter.external_id} is {result.state}", meter_id=meter.meter_id
            ):
                self.backfill.meter_back(meter.meter_id)
            if result.state == NO_VALUES and changed:
                logger.warning(
                    "meter %s answers but gives no value (%s); check its points' objects and "
                    "properties, e.g. with 'meterit-appliance discover --address %s'",
                    meter.external_id,
                    "; ".join(f"{n}: {w}" for n, w in sorted(result.point_errors.items())),
                    meter.target.address or "ADDRESS",
                    extra=extra,
                )
            elif result.state == REACHABLE and previous is not None and previous[0] == NO_VALUES:
                logger.info("meter %s gives values again", meter.external_id, extra=extra)
                self.backfill.meter_back(meter.meter_id)
            if result.state != REACHABLE:
                continue
            for name, why in sorted(result.point_errors.items()):
                if previous is None or (name, why) not in previous[1]:
                    logger.warning(
                        "meter %s point %s unreadable: %s",
                        meter.external_id,
                        name,
                        why,
                        extra=extra,
                    )
