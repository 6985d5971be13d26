"""The collector's failure modes, each provoked for real, reach the journal as one line when they
start and one when they end — never one per poll cycle or retry — with their FAILURE= field and
the fix in the line: a simulated meter gone silent (real BACnet/UDP), the edge database cut off
by a TCP proxy (and unreachable at start), and its disk full (a private PostgreSQL on a tmpfs the
test fills). Readings polled meanwhile are held and written afterwards: none is lost."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from appliance.bacnet.simulator import SimMeterSpec, meters_document, run_simulators
from appliance.collector import loop
from common import db
from tests import harness, tmpfs_postgres
from tests.journal_capture import JournalCapture
from tests.ports import free_udp_port
from tests.tcp_proxy import TcpProxy
from tests.test_collector import (
    eventually,
    insert_meters,
    make_collector,
    readings_per_meter,
)

ERROR, WARNING, INFO = "3", "4", "6"


@pytest.fixture
def journal() -> Iterator[JournalCapture]:
    with JournalCapture("meterit-collector") as capture:
        yield capture


def outage(journal: JournalCapture, failure: str) -> list[tuple[str, str]]:
    """(PRIORITY, MESSAGE) of every line of one failure mode, in order."""
    return [(e["PRIORITY"], e["MESSAGE"]) for e in journal.entries(FAILURE=failure)]


async def lines(journal: JournalCapture, n: int, **match: str) -> bool:
    return len(journal.entries(**match)) >= n


async def cycles_at_least(collector: loop.Collector, n: int) -> bool:
    return collector.cycles >= n


def test_a_silent_meter_is_one_line_with_its_meter_id_and_one_when_it_answers(
    edge_db_url: str, journal: JournalCapture
) -> None:
    spec = SimMeterSpec(device_instance=2601, port=free_udp_port(), points=3)
    other = SimMeterSpec(device_instance=2602, port=free_udp_port(), points=3)
    insert_meters(edge_db_url, meters_document([spec, other]))

    async def scenario() -> None:
        sims = await run_simulators([spec, other])
        collector = make_collector(edge_db_url)
        task = asyncio.ensure_future(collector.run())
        try:
            await eventually(lambda: cycles_at_least(collector, 1))
            sims.set_offline(2601, True)
            await eventually(lambda: lines(journal, 1, FAILURE="meter-unreachable"))
            silent_from = collector.cycles
            await eventually(lambda: cycles_at_least(collector, silent_from + 4))
            sims.set_offline(2601, False)
            await eventually(lambda: lines(journal, 2, FAILURE="meter-unreachable"))
            back_at = collector.cycles
            await eventually(lambda: cycles_at_least(collector, back_at + 2))
        finally:
            collector.stop.set()
            await task
            sims.close()
        meter_id = str(collector._meters[0].meter_id)
        assert collector._meters[0].external_id == "sim-2601"
        entries = journal.entries(FAILURE="meter-unreachable")
        assert [e["METER_ID"] for e in entries] == [meter_id, meter_id]
        (down, down_text), (up, up_text) = outage(journal, "meter-unreachable")
        assert down == WARNING and up == INFO
        assert down_text.startswith("meter unreachable: sim-2601, ")
        assert down_text.endswith(
            "— check it is powered, its address, and that UDP 47808 reaches it; "
            "'meterit-appliance discover --address IP' asks it directly"
        )
        assert up_text.startswith("meter answers again after ")
        assert up_text.endswith("; sim-2601 is reachable")
        assert journal.entries(METER_ID=str(collector._meters[1].meter_id)) == []

    asyncio.run(scenario())


@pytest.fixture
def db_proxy(edge_db_url: str) -> Iterator[TcpProxy]:
    """A TCP proxy in front of the test's edge database (``proxied_url`` reaches it)."""
    url = urlsplit(edge_db_url)
    if not url.hostname or url.hostname.startswith("/"):
        pytest.skip("the test database listens on a Unix socket; the proxy needs TCP")
    proxy = TcpProxy(url.hostname, url.port or 5432)
    yield proxy
    proxy.close()


def proxied(url: str, proxy: TcpProxy) -> str:
    parts = urlsplit(url)
    credentials = parts.netloc.rpartition("@")[0]
    netloc = f"127.0.0.1:{proxy.port}"
    return urlunsplit(parts._replace(netloc=f"{credentials}@{netloc}" if credentials else netloc))


def test_an_edge_database_outage_is_one_line_each_way_and_loses_no_reading(
    edge_db_url: str, db_proxy: TcpProxy, journal: JournalCapture, monkeypatch: Any
) -> None:
    monkeypatch.setattr(loop, "DB_RETRY_S", 0.2)  # the start-up retries, many of them quickly
    spec = SimMeterSpec(device_instance=2611, port=free_udp_port(), points=3)
    insert_meters(edge_db_url, meters_document([spec]))
    proxy = db_proxy
    proxy.mode = "reset"  # down before the collector starts

    async def scenario() -> None:
        sims = await run_simulators([spec])
        collector = make_collector(proxied(edge_db_url, proxy))
        task = asyncio.ensure_future(collector.run())
        try:
            await eventually(lambda: _refused(proxy, 5))
            assert len(journal.entries(FAILURE="edge-database-down")) == 1
            proxy.mode = "pass"
            await eventually(lambda: cycles_at_least(collector, 2))
            stored = collector.cycles
            proxy.cut()
            polled = sims.requests_seen(2611)
            await eventually(lambda: _polled(sims, 2611, polled + 4))
            assert collector.cycles == stored, "nothing can be written while it is away"
            proxy.mode = "pass"
            await eventually(lambda: cycles_at_least(collector, stored + 6))
        finally:
            collector.stop.set()
            await task
            sims.close()
        lines_ = outage(journal, "edge-database-down")
        assert [p for p, _ in lines_] == [ERROR, INFO, ERROR, INFO], lines_
        fix = (
            "— check that PostgreSQL runs ('systemctl status postgresql') and METERIT_DATABASE_URL"
        )
        assert lines_[0][1].startswith("edge database unreachable: ")
        assert "the collector starts once it answers" in lines_[0][1]
        assert lines_[2][1].startswith("edge database unreachable: ")
        assert "readings are held in memory" in lines_[2][1]
        assert lines_[0][1].endswith(fix) and lines_[2][1].endswith(fix)
        assert lines_[1][1].startswith("edge database answers again after ")
        assert "reading(s) held meanwhile" in lines_[3][1]
        assert journal.entries(FAILURE="disk-full") == []
        assert collector.dropped_held == 0
        counts = await readings_per_meter(edge_db_url)
        assert counts["sim-2611"] == 3 * collector.cycles, "every polled cycle was stored"

    asyncio.run(scenario())


def test_readings_dropped_past_the_memory_limit_are_one_line_and_counted_when_it_is_back(
    edge_db_url: str, db_proxy: TcpProxy, journal: JournalCapture, monkeypatch: Any
) -> None:
    monkeypatch.setattr(loop, "HELD_READINGS_MAX", 6)  # two cycles of this meter
    spec = SimMeterSpec(device_instance=2612, port=free_udp_port(), points=3)
    insert_meters(edge_db_url, meters_document([spec]))

    async def scenario() -> None:
        sims = await run_simulators([spec])
        collector = make_collector(proxied(edge_db_url, db_proxy))
        task = asyncio.ensure_future(collector.run())
        try:
            await eventually(lambda: cycles_at_least(collector, 1))
            db_proxy.cut()
            await eventually(lambda: _dropped_at_least(collector, 3 * 4))  # four cycles dropped
            db_proxy.mode = "pass"
            await eventually(lambda: lines(journal, 2, FAILURE="edge-database-down"))
        finally:
            collector.stop.set()
            await task
            sims.close()
        dropping = [m for m in journal.messages() if "dropping the oldest held cycles" in m]
        assert dropping == [
            "readings could not be written for too long: dropping the oldest held cycles to "
            "keep at most 6 readings in memory (3 dropped so far)"
        ]
        back = outage(journal, "edge-database-down")[1][1]
        assert back.endswith(f"; {collector.dropped_held} reading(s) dropped in all"), back

    asyncio.run(scenario())


async def _dropped_at_least(collector: loop.Collector, n: int) -> bool:
    return collector.dropped_held >= n


async def _refused(proxy: TcpProxy, n: int) -> bool:
    return proxy.refused >= n


async def _polled(sims: Any, instance: int, n: int) -> bool:
    return bool(sims.requests_seen(instance) >= n)


@pytest.fixture
def full_disk_postgres() -> Iterator[tmpfs_postgres.TmpfsPostgres]:
    why = tmpfs_postgres.unavailable()
    if why:
        pytest.skip(f"no private PostgreSQL on a tmpfs: {why}")
    server = tmpfs_postgres.TmpfsPostgres()
    try:
        yield server
    finally:
        server.close()


def test_a_full_disk_is_one_line_naming_it_and_one_when_freed_and_loses_no_reading(
    full_disk_postgres: tmpfs_postgres.TmpfsPostgres, journal: JournalCapture
) -> None:
    server = full_disk_postgres
    name = harness.create_database(server.url, prefix="meterit_full")
    url = harness.with_database(server.url, name)
    db.migrate(url, harness.EDGE_MIGRATIONS)
    # 100 readings a cycle: every cycle needs new pages, so a full disk fails every write
    specs = [
        SimMeterSpec(device_instance=2620 + i, port=free_udp_port(), points=50) for i in (1, 2)
    ]
    insert_meters(url, meters_document(specs))

    async def scenario() -> None:
        sims = await run_simulators(specs)
        collector = make_collector(url)
        task = asyncio.ensure_future(collector.run())
        try:
            await eventually(lambda: cycles_at_least(collector, 2))
            await asyncio.to_thread(server.fill)
            await eventually(lambda: lines(journal, 1, FAILURE="disk-full"))
            stored = collector.cycles
            polled = sims.requests_seen(2621)
            await eventually(lambda: _polled(sims, 2621, polled + 4))
            assert collector.cycles == stored, "nothing fits on a full disk"
            assert not task.done(), "the collector stays up"
            server.free()
            await eventually(lambda: lines(journal, 2, FAILURE="disk-full"))
            freed_at = collector.cycles
            await eventually(lambda: cycles_at_least(collector, freed_at + 2))
        finally:
            collector.stop.set()
            await task
            sims.close()
        lines_ = outage(journal, "disk-full")
        assert [p for p, _ in lines_] == [ERROR, INFO], lines_
        assert lines_[0][1].startswith("disk full: ")
        assert "No space left on device" in lines_[0][1]
        assert lines_[0][1].endswith(
            "— free space on the disk holding PostgreSQL's data directory; "
            "'meterit-appliance doctor' shows what is left"
        )
        assert lines_[1][1].startswith("disk has room again after ")
        assert "reading(s) held meanwhile" in lines_[1][1]
        assert journal.entries(FAILURE="edge-database-down") == []
        assert collector.dropped_held == 0
        counts = await readings_per_meter(url)
        assert counts == {"sim-2621": 50 * collector.cycles, "sim-2622": 50 * collector.cycles}

    asyncio.run(scenario())
