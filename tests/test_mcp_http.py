"""The appliance MCP server over streamable HTTP, as the meterit-mcp unit runs it: the bearer
token, and the whole way from simulated meters through the collector, MCP-triggered jobs run by
a real RQ worker, to a real central server."""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx2
import pytest
import requests
from redis import Redis
from rq import Queue
from rq.job import Job

from appliance.bacnet.simulator import SimMeterSpec, meters_document, run_simulators
from appliance.sync.jobs import QUEUE
from tests.central_fixtures import CentralServer, SiteKey
from tests.mcp_helpers import (
    INITIALIZE,
    MCP_HEADERS,
    ROOT,
    TOKEN,
    TOOLS,
    HttpMcpServer,
    collect,
    http_mcp,
    make_collector,
    ok,
    private_redis,
    run_queued_jobs,
)
from tests.ports import free_udp_port
from tests.sync_helpers import assert_edge_equals_central, edge_settings, settings_env
from tests.test_collector import run


@pytest.fixture
def server(edge_db_url: str, redis_url: str, tmp_path: Path):
    env = settings_env(edge_settings(edge_db_url, redis_url, None, None), tmp_path)
    started = HttpMcpServer(env, tmp_path / "mcp.log")
    yield started
    assert started.stop() == 0, started.process.log()


def test_requests_without_the_right_bearer_token_get_401(server: HttpMcpServer) -> None:
    missing = requests.post(server.url, json=INITIALIZE, headers=MCP_HEADERS, timeout=10)
    assert missing.status_code == 401
    assert missing.headers["WWW-Authenticate"].startswith("Bearer")
    assert "missing bearer token" in missing.json()["error"]["message"]
    assert "Authorization: Bearer" in missing.json()["error"]["message"]

    wrong = requests.post(
        server.url,
        json=INITIALIZE,
        headers=MCP_HEADERS | {"Authorization": "Bearer not-the-token-at-all"},
        timeout=10,
    )
    assert wrong.status_code == 401
    assert "wrong bearer token" in wrong.json()["error"]["message"]

    basic = requests.post(
        server.url,
        json=INITIALIZE,
        headers=MCP_HEADERS | {"Authorization": f"Basic {TOKEN}"},
        timeout=10,
    )
    assert basic.status_code == 401

    for scheme in ("Bearer", "bearer"):  # the scheme is case-insensitive
        right = requests.post(
            server.url,
            json=INITIALIZE,
            headers=MCP_HEADERS | {"Authorization": f"{scheme} {TOKEN}"},
            timeout=10,
        )
        assert right.status_code == 200
    assert "not-the-token" not in server.process.log(), "tokens are never logged"
    assert "wrong bearer token" in server.process.log()


def test_the_sdk_client_with_a_wrong_token_is_refused_and_with_the_right_one_lists_tools(
    server: HttpMcpServer,
) -> None:
    async def scenario() -> None:
        with pytest.raises(BaseException) as refused:
            async with http_mcp(server.url, token="not-the-token-at-all") as client:
                await client.list_tools()
        assert "wrong bearer token" in _flatten(refused.value)
        assert "METERIT_MCP_TOKEN" in _flatten(refused.value)

        async with http_mcp(server.url) as client:
            tools = (await client.list_tools()).tools
        assert {t.name for t in tools} == TOOLS

    run(scenario)


def _flatten(err: BaseException) -> str:
    if isinstance(err, BaseExceptionGroup):
        return " ".join(_flatten(e) for e in err.exceptions)
    text = f"{type(err).__name__}: {err}"
    if isinstance(err, httpx2.HTTPStatusError):
        text += f" {err.response.status_code}"
    return text + (" " + _flatten(err.__cause__) if err.__cause__ else "")


@pytest.mark.parametrize(
    ("token", "says"),
    [(None, "METERIT_MCP_TOKEN is not set"), ("short", "use at least 16 random characters")],
)
def test_http_mode_refuses_to_start_without_a_usable_token(
    edge_db_url: str, redis_url: str, tmp_path: Path, token: str | None, says: str
) -> None:
    env = settings_env(edge_settings(edge_db_url, redis_url, None, None), tmp_path)
    if token is not None:
        env["METERIT_MCP_TOKEN"] = token
    done = subprocess.run(
        [sys.executable, "-m", "appliance", "mcp"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 78
    assert says in done.stderr
    assert "--stdio" in done.stderr or "openssl rand" in done.stderr


def test_ready_is_notified_once_listening_and_sigterm_stops_it_cleanly(
    edge_db_url: str, redis_url: str, tmp_path: Path
) -> None:
    # a real notify socket, as systemd gives a Type=notify unit (short path: AF_UNIX limit)
    with (
        tempfile.TemporaryDirectory(prefix="mcp-notify-") as short_dir,
        socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify,
    ):
        notify_path = Path(short_dir) / "sock"
        notify.bind(str(notify_path))
        notify.settimeout(10)
        env = settings_env(edge_settings(edge_db_url, redis_url, None, None), tmp_path)
        server = HttpMcpServer(env | {"NOTIFY_SOCKET": str(notify_path)}, tmp_path / "mcp.log")
        try:
            ready = notify.recv(4096).decode()
            assert ready.startswith("READY=1")
            assert f"STATUS=listening on {server.url}" in ready
            answer = requests.post(server.url, json=INITIALIZE, headers=MCP_HEADERS, timeout=10)
            assert answer.status_code == 401, "READY came before the port answered"
        finally:
            assert server.stop() == 0, server.process.log()
        assert notify.recv(4096).decode() == "STOPPING=1"
    assert "MCP server stopping (SIGTERM)" in server.process.log()


def test_a_port_in_use_stops_the_start_with_a_message_naming_the_setting(
    edge_db_url: str, redis_url: str, tmp_path: Path
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = settings_env(edge_settings(edge_db_url, redis_url, None, None), tmp_path)
        env |= {"METERIT_MCP_BIND": f"127.0.0.1:{port}", "METERIT_MCP_TOKEN": TOKEN}
        done = subprocess.run(
            [sys.executable, "-m", "appliance", "mcp", "--http"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.returncode != 0
    assert f"cannot listen on 127.0.0.1:{port}" in done.stdout + done.stderr
    assert "METERIT_MCP_BIND" in done.stdout + done.stderr


@pytest.mark.slow
def test_meters_synced_and_readings_uploaded_through_mcp_arrive_at_central(
    central_server: CentralServer, edge_db_url: str, redis_url: str, tmp_path: Path
) -> None:
    specs = [
        SimMeterSpec(device_instance=2701, port=free_udp_port(), points=4),
        SimMeterSpec(device_instance=2702, port=free_udp_port(), points=4),
    ]
    site = central_server.create_site("mcp-plant")
    central_server.add_meters(site.site_id, meters_document(specs))
    with private_redis(tmp_path) as queue_url:
        _sync_and_upload_through_mcp(specs, central_server, site, edge_db_url, queue_url, tmp_path)


def _sync_and_upload_through_mcp(
    specs: list[SimMeterSpec],
    central_server: CentralServer,
    site: SiteKey,
    edge_db_url: str,
    redis_url: str,
    tmp_path: Path,
) -> None:
    env = settings_env(edge_settings(edge_db_url, redis_url, central_server, site), tmp_path)
    mcp = HttpMcpServer(env, tmp_path / "mcp.log")

    def queued(job_id: str) -> bool:
        with Redis.from_url(redis_url) as redis:
            return job_id in Queue(QUEUE, connection=redis).job_ids

    def finished(job_id: str) -> dict[str, object]:
        with Redis.from_url(redis_url) as redis:
            job = Job.fetch(job_id, connection=redis)
            assert job.get_status() == "finished", job.latest_result()
            result = job.return_value()
        assert isinstance(result, dict)
        return result

    async def scenario() -> None:
        async with http_mcp(mcp.url) as client:
            # the meters come from central: pull them through MCP
            pull = ok(await client.call_tool("trigger_meter_sync", {}))
            assert queued(pull["job_id"])
            run_queued_jobs(redis_url, env, tmp_path / "worker-meters.log")
            assert finished(pull["job_id"])["result"] == "ok"
            meter_sync = ok(await client.call_tool("get_meter_sync_status", {}))
            assert meter_sync["last_run"]["result"] == "ok"
            assert meter_sync["last_run"]["inserted"] == 2
            assert meter_sync["active_meters"] == 2

            # the collector polls the meters the sync brought
            sims = await run_simulators(specs)
            try:
                await collect(make_collector(edge_db_url), cycles=2)
            finally:
                sims.close()
            before = ok(await client.call_tool("get_sync_status", {}))
            assert before["enrolled"] is True
            assert before["backlog"] >= 16

            # and the upload the assistant asks for brings them to central
            upload = ok(await client.call_tool("trigger_sync", {}))
            assert "note" not in upload["message"]
            assert queued(upload["job_id"])
            run_queued_jobs(redis_url, env, tmp_path / "worker-upload.log")
            assert finished(upload["job_id"])["accepted"] == before["backlog"]
            after = ok(await client.call_tool("get_sync_status", {}))
            assert after["backlog"] == 0
            assert after["last_sync_at"] is not None
            assert after["connectivity"]["state"] == "online"
            assert before["synced"]["last_hour"] == 0
            assert after["synced"] == {
                "last_hour": before["backlog"],
                "last_day": before["backlog"],
            }

        assert (
            assert_edge_equals_central(edge_db_url, central_server, site.site_id)
            == (before["backlog"])
        )

    try:
        run(scenario)
    finally:
        assert mcp.stop() == 0, mcp.process.log()
