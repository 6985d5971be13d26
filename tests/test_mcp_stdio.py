"""The appliance MCP server over stdio, driven by the SDK's real client against a real edge
database, with simulated meters polled by the real collector."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

from appliance.bacnet.simulator import SimMeterSpec, meters_document, run_simulators
from appliance.readings_query import MAX_LIMIT
from tests.mcp_helpers import (
    TOOLS,
    collect,
    count,
    cycles_done,
    eventually,
    make_collector,
    ok,
    private_redis,
    refusal,
    stdio_mcp,
)
from tests.ports import free_tcp_port, free_udp_port
from tests.sync_helpers import edge_settings, settings_env
from tests.test_collector import insert_meters, run


def _env(edge_db_url: str, redis_url: str, tmp_path: Path) -> dict[str, str]:
    return settings_env(edge_settings(edge_db_url, redis_url, None, None), tmp_path)


def _ts(text: str) -> datetime:
    return datetime.fromisoformat(text)


def test_stdio_lists_every_tool_with_a_description_and_typed_schemas(
    edge_db_url: str, redis_url: str, tmp_path: Path
) -> None:
    async def scenario() -> None:
        async with stdio_mcp(_env(edge_db_url, redis_url, tmp_path), tmp_path / "err") as client:
            tools = {t.name: t for t in (await client.list_tools()).tools}
        assert set(tools) == TOOLS
        for tool in tools.values():
            assert tool.description and len(tool.description) > 60, tool.name
            assert tool.input_schema["type"] == "object"
            assert tool.output_schema is not None and tool.output_schema["properties"], tool.name
        query = tools["query_meter_readings"].input_schema
        assert sorted(query["required"]) == ["end", "meter", "start"]
        assert query["properties"]["limit"]["maximum"] == MAX_LIMIT
        assert query["properties"]["start"]["format"] == "date-time"
        page = tools["query_meter_readings"].output_schema
        assert page is not None and {"items", "next_cursor"} <= set(page["properties"])
        assert tools["get_sync_status"].annotations is not None
        assert tools["get_sync_status"].annotations.read_only_hint is True
        assert tools["stop_collection"].annotations is not None
        assert tools["stop_collection"].annotations.read_only_hint is False

    run(scenario)


def test_readings_the_collector_wrote_are_queried_page_by_page(
    edge_db_url: str, redis_url: str, tmp_path: Path
) -> None:
    specs = [
        SimMeterSpec(device_instance=2401, port=free_udp_port(), points=4),
        SimMeterSpec(device_instance=2402, port=free_udp_port(), points=3),
    ]
    insert_meters(edge_db_url, meters_document(specs))

    async def scenario() -> None:
        sims = await run_simulators(specs)
        try:
            await collect(make_collector(edge_db_url), cycles=3)
        finally:
            sims.close()
        with psycopg.connect(edge_db_url) as conn:
            stored = conn.execute(
                "SELECT r.ts, p.name, r.value FROM readings r"
                " JOIN meter_points p ON p.id = r.point_id JOIN meters m ON m.id = r.meter_id"
                " WHERE m.external_id = 'sim-2401' ORDER BY r.ts, r.id"
            ).fetchall()
        assert len(stored) >= 12
        start = stored[0][0]
        end = stored[-1][0] + timedelta(seconds=1)
        window = {"meter": "sim-2401", "start": start.isoformat(), "end": end.isoformat()}

        async with stdio_mcp(_env(edge_db_url, redis_url, tmp_path), tmp_path / "err") as client:
            got: list[dict[str, Any]] = []
            cursor = None
            pages = 0
            while True:
                page = ok(
                    await client.call_tool(
                        "query_meter_readings", window | {"limit": 5, "cursor": cursor}
                    )
                )
                assert len(page["items"]) <= 5
                got += page["items"]
                pages += 1
                cursor = page["next_cursor"]
                if cursor is None:
                    break
            one_point = ok(
                await client.call_tool(
                    "query_meter_readings", window | {"point": stored[0][1], "limit": MAX_LIMIT}
                )
            )
            meters = ok(await client.call_tool("get_meter_status", {}))["meters"]
            single = ok(await client.call_tool("get_meter_status", {"meter": "sim-2402"}))

        assert pages == -(-len(stored) // 5)
        assert [(_ts(r["ts"]), r["point"], r["value"]) for r in got] == stored
        assert all(r["synced"] is False for r in got), "nothing was uploaded"
        assert {r["point"] for r in one_point["items"]} == {stored[0][1]}
        assert len(one_point["items"]) == sum(1 for r in stored if r[1] == stored[0][1])
        by_id = {m["external_id"]: m for m in meters}
        assert set(by_id) == {"sim-2401", "sim-2402"}
        assert by_id["sim-2401"]["state"] == "reachable"
        assert by_id["sim-2401"]["points"] == 4
        assert by_id["sim-2401"]["backlog"] == len(stored)
        assert [m["external_id"] for m in single["meters"]] == ["sim-2402"]

    run(scenario)


def test_stop_collection_stops_the_collector_and_start_collection_resumes_it(
    edge_db_url: str, redis_url: str, tmp_path: Path
) -> None:
    spec = SimMeterSpec(device_instance=2501, port=free_udp_port(), points=3)
    insert_meters(edge_db_url, meters_document([spec]))
    stderr = tmp_path / "mcp-stderr.log"

    async def scenario() -> None:
        sims = await run_simulators([spec])
        collector = make_collector(edge_db_url)
        task = asyncio.ensure_future(collector.run())
        try:
            async with stdio_mcp(_env(edge_db_url, redis_url, tmp_path), stderr) as client:
                await eventually(lambda: cycles_done(collector, 1))
                stopped = ok(await client.call_tool("stop_collection", {}))
                assert stopped["collection_paused"] is True and stopped["changed"] is True
                again = ok(await client.call_tool("stop_collection", {}))
                assert again["changed"] is False and "already" in again["message"]

                await asyncio.sleep(1.5)  # a cycle already in flight may finish
                requests = sims.requests_seen(2501)
                readings = count(edge_db_url, "SELECT count(*) FROM readings")
                await asyncio.sleep(2.5)  # more than two poll intervals
                assert sims.requests_seen(2501) == requests, "a stopped collector must not poll"
                assert count(edge_db_url, "SELECT count(*) FROM readings") == readings
                sync = ok(await client.call_tool("get_sync_status", {}))
                assert sync["collection_paused"] is True

                started = ok(await client.call_tool("start_collection", {}))
                assert started["collection_paused"] is False and started["changed"] is True
                await eventually(lambda: _more_readings(edge_db_url, readings), timeout=10)
                assert sims.requests_seen(2501) > requests
        finally:
            collector.stop.set()
            await task
            sims.close()
        # the protocol owns stdout: the server's log lines went to stderr
        assert "collection paused" in stderr.read_text()

    run(scenario)


async def _more_readings(url: str, than: int) -> bool:
    return count(url, "SELECT count(*) FROM readings") > than


def test_bad_arguments_are_refused_with_what_to_change_and_the_server_goes_on(
    edge_db_url: str, redis_url: str, tmp_path: Path
) -> None:
    insert_meters(
        edge_db_url,
        meters_document([SimMeterSpec(device_instance=2601, port=free_udp_port(), points=2)]),
    )
    t0 = datetime(2026, 11, 23, 10, tzinfo=UTC)
    base = {
        "meter": "sim-2601",
        "start": t0.isoformat(),
        "end": (t0 + timedelta(hours=1)).isoformat(),
    }

    async def scenario() -> None:
        async with stdio_mcp(_env(edge_db_url, redis_url, tmp_path), tmp_path / "err") as client:

            async def query(**changes: Any) -> str:
                args = {k: v for k, v in (base | changes).items() if v is not None}
                return refusal(await client.call_tool("query_meter_readings", args))

            unknown = await query(meter="sim-9999")
            assert "unknown meter 'sim-9999'" in unknown and "known meters: sim-2601" in unknown
            inverted = await query(start=base["end"], end=base["start"])
            assert "is not before end" in inverted and "swap them" in inverted
            too_many = await query(limit=MAX_LIMIT + 1)
            assert f"ask for 1 to {MAX_LIMIT}" in too_many and "next_cursor" in too_many
            too_long = await query(end=(t0 + timedelta(days=90)).isoformat())
            assert "narrow it" in too_long
            unbounded = await query(end=None)
            assert "end" in unbounded and "Field required" in unbounded
            naive = await query(start="2026-11-23T10:00:00")
            assert "has no time zone" in naive
            point = await query(point="voltage")
            assert "has no data point 'voltage'" in point and "its points are" in point
            cursor = await query(cursor="garbage")
            assert "pass next_cursor from the previous page unchanged" in cursor
            meter = refusal(await client.call_tool("get_meter_status", {"meter": "nope"}))
            assert "unknown meter 'nope'" in meter
            errors = refusal(await client.call_tool("get_sync_status", {"recent_errors": 1000}))
            assert "give 0 to 100" in errors

            # every refusal left the server answering
            assert ok(await client.call_tool("get_sync_status", {}))["backlog"] == 0
            sync = ok(await client.call_tool("get_meter_sync_status", {}))
            assert sync["last_run"] is None and sync["active_meters"] == 1

    run(scenario)


def test_trigger_sync_when_not_enrolled_queues_the_job_and_says_it_will_send_nothing(
    edge_db_url: str, redis_url: str, tmp_path: Path
) -> None:
    from redis import Redis
    from rq import Queue

    from appliance.sync.jobs import QUEUE

    async def scenario(queue_url: str) -> None:
        async with stdio_mcp(_env(edge_db_url, queue_url, tmp_path), tmp_path / "err") as client:
            queued = ok(await client.call_tool("trigger_sync", {}))
            meter_sync = ok(await client.call_tool("trigger_meter_sync", {}))
        assert queued["job"] == "upload" and "not enrolled" in queued["message"]
        assert meter_sync["job"] == "meter_sync"
        with Redis.from_url(queue_url) as redis:
            assert Queue(QUEUE, connection=redis).job_ids == [
                queued["job_id"],
                meter_sync["job_id"],
            ]

    with private_redis(tmp_path) as queue_url:
        run(lambda: scenario(queue_url))


def test_a_database_without_schema_and_a_dead_redis_are_tool_errors_naming_the_fix(
    empty_db_url: str, tmp_path: Path
) -> None:
    dead_redis = f"redis://127.0.0.1:{free_tcp_port()}/0"  # nothing listens on TCP there
    env = _env(empty_db_url, dead_redis, tmp_path)

    async def scenario() -> None:
        # the initialize handshake, as desktop assistants connect today
        async with stdio_mcp(env, tmp_path / "err", mode="legacy") as client:
            no_schema = refusal(await client.call_tool("get_sync_status", {}))
            no_redis = refusal(await client.call_tool("trigger_meter_sync", {}))
            assert len((await client.list_tools()).tools) == len(TOOLS), "still serving"
        assert "no MeterIT schema yet" in no_schema and "meterit-appliance migrate" in no_schema
        assert "Redis does not answer" in no_redis and "redis-server" in no_redis

    run(scenario)
