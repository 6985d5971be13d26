"""Shared by the MCP tests: the real server as a subprocess (stdio or streamable HTTP), the SDK's
real client talking to it, simulated meters with the real collector, and a burst RQ worker that
runs exactly the jobs the tools queued."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import psycopg
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp_types import CallToolResult

from appliance.bacnet.client import BacpypesClient, ClientConfig
from appliance.collector.loop import Collector
from appliance.settings import load_settings
from appliance.sync.jobs import QUEUE
from common.embedded import EmbeddedRedis
from tests.ports import free_tcp_port, free_udp_port
from tests.sync_helpers import ApplianceProcess

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "test-token-0123456789abcdef"

TOOLS = {
    "start_collection",
    "stop_collection",
    "get_sync_status",
    "trigger_sync",
    "query_meter_readings",
    "get_meter_status",
    "trigger_meter_sync",
    "get_meter_sync_status",
}

# an MCP initialize request and the headers streamable HTTP wants, as a plain HTTP client
# (curl) sends them: for the tests of what the server answers before any MCP session exists
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "curl", "version": "0"},
    },
}
MCP_HEADERS = {"Accept": "application/json, text/event-stream"}


@asynccontextmanager
async def stdio_mcp(
    env: dict[str, str], stderr_path: Path, mode: str = "auto"
) -> AsyncIterator[Client]:
    """``python -m appliance mcp --stdio`` as the SDK spawns it; its stderr kept in a file.
    ``mode="legacy"`` speaks the initialize handshake of today's desktop assistants."""
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "appliance", "mcp", "--stdio"], env=env, cwd=ROOT
    )
    with stderr_path.open("w") as errlog:
        async with Client(
            stdio_client(params, errlog=errlog), read_timeout_seconds=60, mode=mode
        ) as client:
            yield client


@asynccontextmanager
async def http_mcp(url: str, token: str | None = TOKEN) -> AsyncIterator[Client]:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else None
    async with (
        create_mcp_http_client(headers=headers) as http,
        Client(streamable_http_client(url, http_client=http), read_timeout_seconds=60) as client,
    ):
        yield client


class HttpMcpServer:
    """``python -m appliance mcp`` on a free localhost port, as the meterit-mcp unit runs it."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        port = free_tcp_port()
        self.url = f"http://127.0.0.1:{port}/mcp"
        env = env | {"METERIT_MCP_BIND": f"127.0.0.1:{port}"}
        env.setdefault("METERIT_MCP_TOKEN", TOKEN)
        self.process = ApplianceProcess(["mcp", "--http"], env, log_path)  # as the unit runs it
        deadline = time.monotonic() + 30
        while "MCP server listening" not in self.process.log():
            if self.process.process.poll() is not None or time.monotonic() > deadline:
                self.process.stop()
                raise AssertionError(f"the MCP server did not come up:\n{self.process.log()}")
            time.sleep(0.1)

    def stop(self) -> int:
        return self.process.stop()


def ok(result: CallToolResult) -> dict[str, Any]:
    """The structured answer of a call that must have worked."""
    assert not result.is_error, f"tool failed: {result.content}"
    assert isinstance(result.structured_content, dict)
    return dict(result.structured_content)


def refusal(result: CallToolResult) -> str:
    """The message of a call that must have been refused."""
    assert result.is_error, f"expected a tool error, got {result.structured_content}"
    text = "".join(getattr(block, "text", "") for block in result.content)
    assert text
    return text


def run_queued_jobs(redis_url: str, env: dict[str, str], log_path: Path) -> str:
    """Run every job waiting in the appliance queue with a real RQ worker, then return."""
    rq = Path(sys.executable).parent / "rq"
    done = subprocess.run(
        [str(rq), "worker", "--burst", "--url", redis_url, QUEUE],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = done.stdout + done.stderr
    log_path.write_text(output)
    assert done.returncode == 0, output
    return output


def count(url: str, sql: str, params: Any = ()) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(sql, params).fetchone()
    assert row is not None
    return int(row[0])


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"condition not met within {timeout} s")


def make_collector(edge_db_url: str) -> Collector:
    """The real collector, polling every second with short timeouts (as tests/test_collector)."""
    settings = load_settings(
        {
            "METERIT_DATABASE_URL": edge_db_url,
            "METERIT_POLL_INTERVAL_S": "1",
            "METERIT_REQUEST_TIMEOUT_S": "0.3",
        }
    )
    client = BacpypesClient(
        ClientConfig(local_address=f"127.0.0.1:{free_udp_port()}", timeout_base_s=0.3, retries=0)
    )
    return Collector(settings, client)


async def collect(collector: Collector, cycles: int) -> None:
    """Run the collector until it has completed ``cycles`` poll cycles, then stop it."""
    task = asyncio.ensure_future(collector.run())
    try:
        await eventually(lambda: cycles_done(collector, cycles))
    finally:
        collector.stop.set()
        await task


async def cycles_done(collector: Collector, cycles: int) -> bool:
    return collector.cycles >= cycles


@contextmanager
def private_redis(tmp_path: Path) -> Iterator[str]:
    """A real Redis of the test's own for tests that queue jobs: the shared test database is
    flushed by every test session on this host, and another session's worker would run our
    jobs with its own settings."""
    server = EmbeddedRedis(tmp_path / "redis")
    try:
        yield server.url
    finally:
        server.stop()
