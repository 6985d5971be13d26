"""The central MCP server over stdio (a local assistant, acting as one operator's MCP token) and
the ``meterit-central mcp-token`` CLI that makes, lists and revokes those tokens."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import psycopg

from central import mcp_tokens
from tests.alert_helpers import ADMIN
from tests.central_mcp_helpers import (
    READ_TOOLS,
    ROOT,
    VIEWER,
    central_env,
    seed,
    stdio_central,
)
from tests.mcp_helpers import ok, refusal


def _cli(env: dict[str, str], *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "central", *args],
        cwd=ROOT,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_stdio_acts_as_the_token_owner_until_the_token_is_revoked(
    central_db_url: str, redis_url: str, tmp_path: Path
) -> None:
    seeded = seed(central_db_url)
    env = central_env(central_db_url, redis_url, tmp_path, METERIT_MCP_TOKEN=seeded.tokens[VIEWER])

    async def scenario() -> None:
        async with stdio_central(env, tmp_path / "err") as client:
            names = {t.name for t in (await client.list_tools()).tools}
            assert names == READ_TOOLS
            meters = ok(
                await client.call_tool("query_meters", {"site_id": seeded.sites["plant-a"]})
            )
            assert [m["external_id"] for m in meters["meters"]] == ["m0", "m1"]
            refused = refusal(await client.call_tool("silence_alerts", {"minutes": 5}))
            assert "unknown tool" in refused
            with psycopg.connect(central_db_url) as conn:
                mcp_tokens.revoke_token(conn, seeded.tenant_a, seeded.token_ids[VIEWER], "cli")
                conn.commit()
            assert "revoked" in refusal(await client.call_tool("query_meters", {}))
            assert (await client.list_tools()).tools == []

    asyncio.run(scenario())
    assert seeded.tokens[VIEWER] not in (tmp_path / "err").read_text()


def test_stdio_refuses_to_start_without_a_usable_token(
    central_db_url: str, redis_url: str, tmp_path: Path
) -> None:
    env = central_env(central_db_url, redis_url, tmp_path)
    missing = _cli(env, "mcp", "--stdio")
    assert missing.returncode == 78 and "METERIT_MCP_TOKEN is not set" in missing.stderr
    wrong = _cli(env | {"METERIT_MCP_TOKEN": "mcp_0000_not-a-token"}, "mcp", "--stdio")
    assert wrong.returncode == 78 and "unknown or revoked" in wrong.stderr
    assert "not-a-token" not in wrong.stderr


def test_cli_makes_lists_and_revokes_tokens(
    central_db_url: str, redis_url: str, tmp_path: Path
) -> None:
    seed(central_db_url)
    env = central_env(central_db_url, redis_url, tmp_path)
    made = _cli(env, "mcp-token", "create", ADMIN, "--name", "laptop", "--json")
    assert made.returncode == 0, made.stderr
    token = json.loads(made.stdout)
    assert token["token"].startswith(token["prefix"] + "_") and token["role"] == "admin"
    listed = _cli(env, "mcp-token", "list", ADMIN)
    assert listed.returncode == 0 and token["prefix"] in listed.stdout and "laptop" in listed.stdout
    assert token["token"] not in listed.stdout
    with psycopg.connect(central_db_url) as conn:
        owner = mcp_tokens.authenticate(conn, token["token"])
        stored = conn.execute(
            "SELECT count(*) FROM mcp_tokens WHERE token_hash::text LIKE %s",
            ("%" + token["token"][-20:] + "%",),
        ).fetchone()
    assert owner is not None and owner.email == ADMIN and stored == (0,)
    revoked = _cli(env, "mcp-token", "revoke", str(token["token_id"]))
    assert revoked.returncode == 0 and token["prefix"] in revoked.stdout
    again = _cli(env, "mcp-token", "revoke", str(token["token_id"]))
    assert again.returncode == 65 and "no unrevoked" in again.stderr
    with psycopg.connect(central_db_url) as conn:
        assert mcp_tokens.authenticate(conn, token["token"]) is None
    unknown = _cli(env, "mcp-token", "create", "nobody@example.com")
    assert unknown.returncode == 65 and "no active user" in unknown.stderr
