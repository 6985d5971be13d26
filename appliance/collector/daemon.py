"""``meterit-appliance collector``: the asyncio poll loop under systemd.

READY=1 only once the BACnet port is bound and the database answers; WATCHDOG=1 comes from the
loop itself, so a hung loop gets restarted; SIGTERM abandons a cycle in flight rather than commit
part of it. Meter changes and the pause flag arrive by LISTEN/NOTIFY, so neither needs a restart.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import time
from typing import Any, Protocol

import psycopg
from psycopg import AsyncConnection

from appliance.bacnet.client import BacpypesClient, ClientConfig, DeviceClient, DeviceTarget
from appliance.collector.meters import PolledMeter, load_meters
from appliance.collector.poll import MeterResult, poll_all
from appliance.collector.store import write_cycle
from appliance.settings import ApplianceSettings, load_settings
from common.config import EX_CONFIG, load_or_report
from common.logs import fields, setup_logging
from common.systemd import Notifier

logger = logging.getLogger(__name__)

DB_RETRY_S = 5.0


class ManagedClient(DeviceClient, Protocol):
    """A device client the collector owns: it binds the port at start and forgets a device whose
    configuration changed."""

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    def forget(self, target: DeviceTarget) -> None: ...


def next_tick(now: float, interval: float) -> float:
    """The next clock-aligned cycle start: a 60 s interval polls at :00 of every minute."""
    return (now // interval + 1) * interval


class Collector:
    def __init__(
        self,
        settings: ApplianceSettings,
        client: ManagedClient,
        notifier: Notifier | None = None,
    ) -> None:
        self.settings = settings
        self.client = client
        self.notifier = notifier or Notifier()
        self.stop = asyncio.Event()
        self._wake = asyncio.Event()
        self._reload = True
        self._meters: list[PolledMeter] = []
        self._states: dict[int, tuple[bool, frozenset[tuple[str, str]]]] = {}
        self._paused: bool | None = None
        self.cycles = 0

    # ----- database

    async def _connect(self) -> AsyncConnection[Any]:
        # autocommit: reads see other units' changes at once; writes use explicit transactions
        return await AsyncConnection.connect(
            self.settings.database_url,
            autocommit=True,
            application_name="meterit-collector",
            connect_timeout=5,
        )

    async def _connect_until_up(self) -> AsyncConnection[Any] | None:
        """A connection once the database answers; None when stop was asked for meanwhile."""
        while True:
            try:
                return await self._connect()
            except psycopg.OperationalError as err:
                logger.error(
                    "edge database unreachable (%s); retrying in %.0f s — is PostgreSQL running "
                    "and METERIT_DATABASE_URL right?",
                    str(err).strip().splitlines()[0],
                    DB_RETRY_S,
                )
                self.notifier.status("waiting for the edge database")
                if await self._sleep(DB_RETRY_S):
                    return None

    async def _listen(self) -> None:
        """Wake the loop when meters change or collection is paused/resumed elsewhere."""
        while not self.stop.is_set():
            try:
                conn = await AsyncConnection.connect(
                    self.settings.database_url,
                    autocommit=True,
                    application_name="meterit-collector",
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
                await self._sleep(DB_RETRY_S)

    # ----- the loop

    async def _sleep(self, seconds: float) -> bool:
        """Sleep, pinging the watchdog; True when stop was asked for."""
        try:
            await asyncio.wait_for(self.stop.wait(), seconds)
        except TimeoutError:
            return False
        return True

    async def _wait_for_tick(self) -> None:
        target = next_tick(time.time(), self.settings.poll_interval_s)
        ping = Notifier.watchdog_interval_s() or 10.0
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
                waiters, timeout=min(left, ping), return_when=asyncio.FIRST_COMPLETED
            )
            for task in pending:
                task.cancel()
            if self._wake.is_set() and self._paused:
                return  # a resume should not wait for the next tick to be seen

    async def run(self) -> None:
        """Poll until ``stop`` is set."""
        conn = await self._connect_until_up()
        if conn is None:
            return
        await self.client.start()  # binds the BACnet port or raises
        listener = asyncio.ensure_future(self._listen())
        self.notifier.ready("started")
        logger.info(
            "collector ready: polling every %d s, at most %d meters at once",
            self.settings.poll_interval_s,
            self.settings.poll_concurrency,
        )
        try:
            while not self.stop.is_set():
                try:
                    conn = await self._cycle(conn)
                except psycopg.OperationalError as err:
                    logger.error(
                        "edge database lost (%s); this cycle's readings were not stored; "
                        "reconnecting",
                        str(err).strip().splitlines()[0],
                    )
                    self.notifier.status("edge database unreachable; reconnecting")
                    await conn.close()
                    reconnected = await self._connect_until_up()
                    if reconnected is None:
                        break
                    conn = reconnected
                    continue
                await self._wait_for_tick()
        finally:
            self.notifier.stopping()
            listener.cancel()
            await self.client.close()
            await conn.close()
            logger.info("collector stopped")

    async def _cycle(self, conn: AsyncConnection[Any]) -> AsyncConnection[Any]:
        if conn.closed:
            conn = await self._connect()
        if self._reload:
            self._reload = False
            self._meters = await load_meters(conn)
            for meter in self._meters:
                # its address may have changed with its configuration: look it up afresh
                self.client.forget(meter.target)
            logger.info("polling %d meter(s)", len(self._meters))
        row = await (await conn.execute("SELECT collection_paused FROM appliance_state")).fetchone()
        paused = bool(row and row[0])
        if paused != self._paused:
            logger.info("collection %s", "paused" if paused else "running")
            self._paused = paused
        if paused:
            self.notifier.status(f"collection paused; {len(self._meters)} meter(s) configured")
            return conn

        started = time.monotonic()
        deadline = max(1.0, self.settings.poll_interval_s * 0.9)
        results = await poll_all(
            self.client, self._meters, self.settings.poll_concurrency, deadline
        )
        if self.stop.is_set():
            logger.info("stopping: the cycle in flight is abandoned, nothing partial written")
            return conn
        rows = await write_cycle(conn, results)
        self.cycles += 1
        self._log_changes(results)
        reachable = sum(r.reachable for r in results)
        self.notifier.status(
            f"{reachable}/{len(results)} meters reachable; {rows} readings in "
            f"{time.monotonic() - started:.1f} s"
        )
        return conn

    def _log_changes(self, results: list[MeterResult]) -> None:
        """One line per meter whose health changed, never one per cycle per failing meter."""
        for result in results:
            meter = result.meter
            state = (result.reachable, frozenset(result.point_errors.items()))
            previous = self._states.get(meter.meter_id)
            self._states[meter.meter_id] = state
            if previous == state:
                continue
            extra = fields(meter_id=meter.meter_id)
            if not result.reachable:
                logger.warning(
                    "meter %s unreachable: %s; check it is powered and on the network",
                    meter.external_id,
                    result.error,
                    extra=extra,
                )
            elif previous is not None and not previous[0]:
                logger.info("meter %s reachable again", meter.external_id, extra=extra)
            for name, why in sorted(result.point_errors.items()):
                if previous is None or (name, why) not in previous[1]:
                    logger.warning(
                        "meter %s point %s unreadable: %s",
                        meter.external_id,
                        name,
                        why,
                        extra=extra,
                    )


def client_from_settings(settings: ApplianceSettings) -> BacpypesClient:
    return BacpypesClient(
        ClientConfig(
            local_address=settings.bacnet_address,
            timeout_base_s=settings.request_timeout_s,
            max_in_flight=max(settings.poll_concurrency * 2, 8),
        )
    )


async def _main_async(settings: ApplianceSettings) -> None:
    collector = Collector(settings, client_from_settings(settings))
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, collector.stop.set)
    await collector.run()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="meterit-appliance collector", description="Poll the BACnet meters (a daemon)."
    )
    parser.parse_args(argv)
    settings = load_or_report(load_settings, "meterit-appliance")
    if settings is None:
        return EX_CONFIG
    setup_logging("meterit-collector", settings.log_level)
    try:
        asyncio.run(_main_async(settings))
    except OSError as err:
        logger.error("collector cannot start: %s", err)
        return 1
    return 0
