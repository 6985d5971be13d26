"""The central MCP server over streamable HTTP, as the meterit-central-mcp unit runs it, driven
by the SDK's real client with real operator MCP tokens against a real database: every tool with
good and bad arguments, roles, tenant isolation, audit, revocation and the token rate limit."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
import requests

from central.reports import runner
from tests import harness
from tests.alert_helpers import ADMIN
from tests.central_mcp_helpers import (
    ALL_TOOLS,
    OPERATOR,
    OPERATOR_TOOLS,
    OTHER_ADMIN,
    READ_TOOLS,
    VIEWER,
    HttpServer,
    Seeded,
    audit_entries,
    central_env,
    seed,
)
from tests.mcp_helpers import INITIALIZE, MCP_HEADERS, http_mcp, ok, refusal


@pytest.fixture(scope="module")
def seeded(pg_admin_url: str, central_template: str) -> Iterator[Seeded]:
    with harness.fresh_database(pg_admin_url, central_template) as url:
        yield seed(url)


@pytest.fixture(scope="module")
def clean_redis(redis_server_url: str) -> str:
    client = redis.Redis.from_url(redis_server_url)
    client.flushdb()
    client.close()
    return redis_server_url


@pytest.fixture(scope="module")
def server(
    seeded: Seeded, clean_redis: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[HttpServer]:
    tmp = tmp_path_factory.mktemp("mcp")
    env = central_env(seeded.db_url, clean_redis, tmp, METERIT_MCP_MAIL_RATE="3/hour")
    started = HttpServer(env, tmp / "mcp.log")
    yield started
    assert started.stop() == 0, started.log()


def call(server: HttpServer, token: str, tool: str, **args: Any) -> Any:
    async def run() -> Any:
        async with http_mcp(server.url, token) as client:
            return await client.call_tool(tool, args)

    return asyncio.run(run())


def tool_names(server: HttpServer, token: str) -> dict[str, Any]:
    async def run() -> dict[str, Any]:
        async with http_mcp(server.url, token) as client:
            return {t.name: t for t in (await client.list_tools()).tools}

    return asyncio.run(run())


def test_each_role_sees_only_its_tools_with_schemas_and_annotations(
    server: HttpServer, seeded: Seeded
) -> None:
    admin = tool_names(server, seeded.tokens[ADMIN])
    assert set(admin) == ALL_TOOLS
    assert set(tool_names(server, seeded.tokens[OPERATOR])) == OPERATOR_TOOLS
    assert set(tool_names(server, seeded.tokens[VIEWER])) == READ_TOOLS
    for tool in admin.values():
        assert tool.description and "never" in admin["query_meters"].description
        assert tool.output_schema is not None and tool.output_schema["properties"], tool.name
        assert tool.annotations is not None
        assert tool.annotations.read_only_hint is (tool.name in READ_TOOLS), tool.name
    assert admin["configure_alert_rules"].annotations.idempotent_hint is True
    assert admin["configure_alert_rules"].annotations.destructive_hint is True
    assert admin["send_alert_email"].annotations.open_world_hint is True
    readings = admin["query_readings"].input_schema["properties"]
    assert readings["max_points"]["maximum"] == 2000
    answer = admin["query_readings"].output_schema["properties"]
    assert {"returned", "truncated", "next_cursor", "resolution_used"} <= set(answer)


def test_viewer_cannot_call_a_write_tool(server: HttpServer, seeded: Seeded) -> None:
    text = refusal(call(server, seeded.tokens[VIEWER], "silence_alerts", minutes=10))
    assert "unknown tool" in text
    text = refusal(call(server, seeded.tokens[OPERATOR], "configure_alert_rules", action="list"))
    assert "unknown tool" in text
    with psycopg.connect(seeded.db_url) as conn:
        assert conn.execute("SELECT count(*) FROM alert_silences").fetchone() == (0,)


def test_query_meters_filters_and_pages_within_the_tenant(
    server: HttpServer, seeded: Seeded
) -> None:
    token = seeded.tokens[VIEWER]
    answer = call(server, token, "query_meters")
    every = ok(answer)
    text = answer.content[0].text  # what most assistants read: the same, without whitespace
    assert json.loads(text) == every and "\n" not in text and ", " not in text
    assert {(m["site_name"], m["external_id"]) for m in every["meters"]} == {
        ("plant-a", "m0"), ("plant-a", "m1"), ("plant-b", "m0"),
    }  # fmt: skip
    assert every["returned"] == 3 and every["truncated"] is False and every["next_cursor"] is None
    m0 = next(
        m for m in every["meters"] if m["site_name"] == "plant-a" and m["external_id"] == "m0"
    )
    assert [p["name"] for p in m0["points"]] == ["power_kw", "voltage_v"]
    unreachable = ok(call(server, token, "query_meters", state="unreachable"))
    assert [m["external_id"] for m in unreachable["meters"]] == ["m1"]
    by_point = ok(call(server, token, "query_meters", point="voltage_v"))
    assert {m["site_name"] for m in by_point["meters"]} == {"plant-a"}
    first = ok(call(server, token, "query_meters", limit=2))
    assert first["returned"] == 2 and first["truncated"] is True
    rest = ok(call(server, token, "query_meters", limit=2, cursor=first["next_cursor"]))
    assert rest["returned"] == 1 and rest["next_cursor"] is None
    seen = {m["meter_id"] for m in first["meters"]} | {m["meter_id"] for m in rest["meters"]}
    assert seen == {m["meter_id"] for m in every["meters"]}
    # the other tenant's site answers nothing, not its meters
    other = ok(call(server, token, "query_meters", site_id=seeded.sites["other-site"]))
    assert other["meters"] == []
    assert "cursor" in refusal(call(server, token, "query_meters", cursor="bm90LWEtY3Vyc29y"))
    assert refusal(call(server, token, "query_meters", limit=5000))


def _sql_buckets(
    db_url: str, site_id: int, unit: str, start: datetime, end: datetime
) -> list[tuple[Any, ...]]:
    """The reference: the same buckets computed straight from the raw readings."""
    with psycopg.connect(db_url) as conn:
        return conn.execute(
            """SELECT date_trunc(%s, r.ts AT TIME ZONE 'Europe/Paris'), avg(r.value), count(*)
               FROM readings r JOIN meter_points p ON p.id = r.point_id
               JOIN meters m ON m.id = p.meter_id
               WHERE m.site_id = %s AND m.external_id = 'm0' AND p.name = 'power_kw'
                 AND r.ts >= %s AND r.ts < %s GROUP BY 1 ORDER BY 1""",
            (unit, site_id, start, end),
        ).fetchall()


def test_query_readings_picks_a_resolution_that_fits_and_pages(
    server: HttpServer, seeded: Seeded
) -> None:
    token = seeded.tokens[VIEWER]
    site = seeded.sites["plant-a"]
    base = {"site_id": site, "meter": "m0", "points": ["power_kw"]}
    hours6 = ok(
        call(
            server,
            token,
            "query_readings",
            **base,
            start="2026-11-01T00:00:00Z",
            end="2026-11-01T06:00:00Z",
        )
    )
    assert hours6["resolution_used"] == "raw" and hours6["returned"] == 360
    three_days = ok(
        call(
            server,
            token,
            "query_readings",
            **base,
            start="2026-11-01T00:00:00Z",
            end="2026-11-04T00:00:00Z",
        )
    )
    assert three_days["resolution_used"] == "15min" and three_days["returned"] == 288
    assert three_days["truncated"] is False
    tight = ok(
        call(
            server,
            token,
            "query_readings",
            **base,
            start="2026-11-01T00:00:00Z",
            end="2026-11-04T00:00:00Z",
            max_points=200,
            aggregates=["min", "n"],
        )
    )
    # 200 values in three columns: at most 66 rows, so hours (72) do not fit; days do
    assert tight["resolution_used"] == "day" and tight["returned"] == 3
    hourly = ok(
        call(
            server,
            token,
            "query_readings",
            **base,
            start="2026-11-01T00:00:00Z",
            end="2026-11-04T00:00:00Z",
            max_points=100,
            aggregates=["n", "min", "max", "last"],
            resolution="hour",
        )
    )
    assert hourly["returned"] == 20 and hourly["truncated"] is True  # 100 values / 5 columns
    first = hourly["series"][0]
    assert first["value"][0] == pytest.approx(129.5) and first["n"][0] == 60
    assert (first["min"][0], first["max"][0], first["last"][0]) == (100, 159, 159)
    # days in Paris: buckets start at local midnight and match the bare SQL over raw readings
    start, end = "2026-11-01T00:00:00+01:00", "2026-11-04T00:00:00+01:00"
    days = ok(
        call(
            server,
            token,
            "query_readings",
            **base,
            start=start,
            end=end,
            resolution="day",
            tz="Europe/Paris",
            aggregates=["n"],
        )
    )
    assert days["resolution_used"] == "day"
    column = days["series"][0]
    got = list(zip(column["t"], column["value"], column["n"], strict=True))
    want = _sql_buckets(
        seeded.db_url, site, "day", datetime.fromisoformat(start), datetime.fromisoformat(end)
    )
    assert [g[2] for g in got] == [w[2] for w in want]
    assert [g[1] for g in got] == pytest.approx([w[1] for w in want])
    assert all(g[0].endswith("+01:00") and "T00:00:00" in g[0] for g in got)
    # two series, paged raw: the pages join up to every reading exactly once
    both = {
        "site_id": site,
        "meter": "m0",
        "start": "2026-11-01T00:00:00Z",
        "end": "2026-11-01T01:00:00Z",
        "resolution": "raw",
        "max_points": 50,
    }
    seen: list[tuple[str, str]] = []
    cursor = None
    for _ in range(10):
        page = ok(
            call(server, token, "query_readings", **both, **({"cursor": cursor} if cursor else {}))
        )
        assert page["returned"] <= 50
        seen += [(s["point"], t) for s in page["series"] for t in s["t"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 120 == len(set(seen))


def test_query_readings_refuses_what_it_cannot_answer(server: HttpServer, seeded: Seeded) -> None:
    token = seeded.tokens[VIEWER]
    site = seeded.sites["plant-a"]
    rng = {"start": "2026-11-01T00:00:00Z", "end": "2026-11-02T00:00:00Z"}
    assert "query_meters" in refusal(
        call(server, token, "query_readings", site_id=site, meter="nope", **rng)
    )
    assert "query_meters" in refusal(
        call(server, token, "query_readings", site_id=seeded.sites["other-site"], meter="m0", **rng)
    )
    assert "time zone" in refusal(
        call(server, token, "query_readings", site_id=site, meter="m0", tz="Mars/Base", **rng)
    )
    assert "after start" in refusal(
        call(
            server,
            token,
            "query_readings",
            site_id=site,
            meter="m0",
            start=rng["end"],
            end=rng["start"],
        )
    )
    assert "no point" in refusal(
        call(server, token, "query_readings", site_id=site, meter="m0", points=["nope"], **rng)
    )
    assert refusal(
        call(server, token, "query_readings", site_id=site, meter="m0", max_points=2001, **rng)
    )
    assert "cursor" in refusal(
        call(server, token, "query_readings", site_id=site, meter="m0", cursor="e30=", **rng)
    )


def test_get_site_status_summarises_and_details_own_sites(
    server: HttpServer, seeded: Seeded
) -> None:
    token = seeded.tokens[VIEWER]
    summary = ok(call(server, token, "get_site_status"))
    assert (
        summary["sites"] == 2
        and summary["states"]["online"] == 1
        and summary["states"]["never"] == 1
    )
    assert summary["meters_unreachable"] == 1 and summary["backlog"] == 42
    assert summary["detail"] == []
    worst = {p["site_name"]: p["why"] for p in summary["top_problems"]}
    assert "1 meter(s) unreachable" in worst["plant-a"]
    detail = ok(call(server, token, "get_site_status", site_ids=[seeded.sites["plant-a"]]))[
        "detail"
    ]
    assert detail[0]["unreachable_meters"] == ["m1"] and detail[0]["backlog"] == 42
    assert detail[0]["heartbeat_age_s"] is not None and detail[0]["heartbeat_age_s"] < 3600
    assert "no site" in refusal(
        call(server, token, "get_site_status", site_ids=[seeded.sites["other-site"]])
    )


def test_list_alerts_sees_only_its_tenant(server: HttpServer, seeded: Seeded) -> None:
    mine = ok(call(server, seeded.tokens[VIEWER], "list_alerts", state="all"))
    theirs = ok(call(server, seeded.tokens[OTHER_ADMIN], "list_alerts", state="all"))
    assert mine["returned"] >= 1 and theirs["returned"] >= 1
    assert {a["site_name"] for a in mine["alerts"]} <= {"plant-a", "plant-b", None}
    assert {a["site_name"] for a in theirs["alerts"]} <= {"other-site", None}
    assert not {a["id"] for a in mine["alerts"]} & {a["id"] for a in theirs["alerts"]}
    assert "cursor" in refusal(call(server, seeded.tokens[VIEWER], "list_alerts", cursor="x"))


def test_configure_alert_rules_is_idempotent_by_name_and_audited(
    server: HttpServer, seeded: Seeded
) -> None:
    token = seeded.tokens[ADMIN]
    listed = ok(call(server, token, "configure_alert_rules", action="list"))
    assert listed["outcome"] == "listed" and "value_threshold" in listed["kinds"]
    rule = {
        "kind": "value_threshold",
        "severity": "critical",
        "params": {"point": "power_kw", "op": ">", "set": 500},
    }
    made = ok(
        call(
            server,
            token,
            "configure_alert_rules",
            action="create",
            name="Too much power",
            rule=rule,
        )
    )
    assert made["outcome"] == "created"
    again = ok(
        call(
            server,
            token,
            "configure_alert_rules",
            action="create",
            name="Too much power",
            rule=rule,
        )
    )
    assert again["outcome"] == "unchanged" and again["rules"][0]["id"] == made["rules"][0]["id"]
    changed = rule | {"severity": "warning"}
    updated = ok(
        call(
            server,
            token,
            "configure_alert_rules",
            action="update",
            name="Too much power",
            rule=changed,
        )
    )
    assert updated["outcome"] == "updated" and updated["rules"][0]["severity"] == "warning"
    assert "different rule" in refusal(
        call(
            server,
            token,
            "configure_alert_rules",
            action="create",
            name="Too much power",
            rule=rule,
        )
    )
    assert "kind" in refusal(
        call(
            server,
            token,
            "configure_alert_rules",
            action="create",
            name="Bad",
            rule={"kind": "nope"},
        )
    )
    assert (
        ok(call(server, token, "configure_alert_rules", action="delete", name="Too much power"))[
            "outcome"
        ]
        == "deleted"
    )
    assert (
        ok(call(server, token, "configure_alert_rules", action="delete", name="Too much power"))[
            "outcome"
        ]
        == "absent"
    )
    # the other tenant has no such rule and never saw any of it
    other = ok(call(server, seeded.tokens[OTHER_ADMIN], "configure_alert_rules", action="list"))
    assert "Too much power" not in {r["name"] for r in other["rules"]}
    entries = audit_entries(seeded.db_url, "mcp.configure_alert_rules")
    outcomes = [d["outcome"] for _, d in entries]
    assert outcomes.count("ok") == 5 and outcomes.count("refused") == 2
    assert all(
        actor == f"user:{ADMIN}" and d["token"].startswith("mcp_") and len(d["args_sha256"]) == 16
        for actor, d in entries
    )
    assert seeded.tokens[ADMIN] not in str(entries) and "power_kw" not in str(entries)


def test_silence_alerts_creates_and_ends(server: HttpServer, seeded: Seeded) -> None:
    token = seeded.tokens[OPERATOR]
    made = ok(
        call(
            server,
            token,
            "silence_alerts",
            minutes=60,
            site_id=seeded.sites["plant-a"],
            comment="electrician",
        )
    )
    assert made["silence_id"] > 0
    assert "minutes" in refusal(call(server, token, "silence_alerts"))
    assert "no such site" in refusal(
        call(server, token, "silence_alerts", minutes=5, site_id=seeded.sites["other-site"])
    )
    ended = ok(call(server, token, "silence_alerts", action="end", silence_id=made["silence_id"]))
    assert ended["message"] == "silence ended"
    assert "no running silence" in refusal(
        call(server, token, "silence_alerts", action="end", silence_id=made["silence_id"])
    )
    outcomes = [d["outcome"] for _, d in audit_entries(seeded.db_url, "mcp.silence_alerts")]
    assert outcomes == ["ok", "refused", "refused", "ok", "refused"]


def test_send_alert_email_only_to_tenant_recipients_and_rate_limited(
    server: HttpServer, seeded: Seeded
) -> None:
    token = seeded.tokens[OPERATOR]
    sent = ok(
        call(
            server,
            token,
            "send_alert_email",
            recipients=[ADMIN],
            subject="Plant A",
            text="Look at m1",
        )
    )
    with psycopg.connect(seeded.db_url) as conn:
        row = conn.execute(
            """SELECT m.tenant_id, m.subject, m.text_body, o.recipient FROM mail_messages m
               JOIN mail_outbox o ON o.message_id = m.id WHERE m.id = %s""",
            (sent["message_id"],),
        ).fetchone()
    assert row is not None and row[0] == seeded.tenant_a and row[1] == "Plant A" and row[3] == ADMIN
    assert "Look at m1" in row[2] and OPERATOR in row[2]
    text = refusal(
        call(
            server,
            token,
            "send_alert_email",
            recipients=["stranger@evil.example"],
            subject="x",
            text="y",
        )
    )
    assert "not a recipient" in text
    assert "not a recipient" in refusal(
        call(server, token, "send_alert_email", recipients=[OTHER_ADMIN], subject="x", text="y")
    )
    ok(call(server, token, "send_alert_email", recipients=[VIEWER], subject="2", text="two"))
    ok(call(server, token, "send_alert_email", recipients=[VIEWER], subject="3", text="three"))
    assert "rate limit" in refusal(
        call(server, token, "send_alert_email", recipients=[VIEWER], subject="4", text="four")
    )
    entries = audit_entries(seeded.db_url, "mcp.send_alert_email")
    assert [d["outcome"] for _, d in entries] == ["ok", "refused", "refused", "ok", "ok", "refused"]
    assert "Look at m1" not in str(entries)


def test_tokens_missing_wrong_or_revoked_get_401(server: HttpServer, seeded: Seeded) -> None:
    missing = requests.post(server.url, json=INITIALIZE, headers=MCP_HEADERS, timeout=10)
    assert missing.status_code == 401 and missing.headers["WWW-Authenticate"].startswith("Bearer")
    assert "mcp-token create" in missing.json()["error"]["message"]
    wrong = requests.post(
        server.url,
        json=INITIALIZE,
        headers=MCP_HEADERS | {"Authorization": "Bearer mcp_nope"},
        timeout=10,
    )
    assert wrong.status_code == 401
    # a token works, is revoked, and its very next request is refused
    with psycopg.connect(seeded.db_url) as conn:
        from central import mcp_tokens

        row = conn.execute("SELECT id, tenant_id FROM users WHERE email = %s", (VIEWER,)).fetchone()
        assert row is not None
        new = mcp_tokens.create_token(conn, row[0], row[1], "to revoke", "cli")
        conn.commit()
    auth = MCP_HEADERS | {"Authorization": f"Bearer {new.plaintext}"}
    assert requests.post(server.url, json=INITIALIZE, headers=auth, timeout=10).status_code == 200
    with psycopg.connect(seeded.db_url) as conn:
        mcp_tokens.revoke_token(conn, seeded.tenant_a, new.token_id, "cli")
        conn.commit()
    assert requests.post(server.url, json=INITIALIZE, headers=auth, timeout=10).status_code == 401
    assert new.plaintext not in server.log()


def test_wrong_tokens_are_rate_limited_per_address(
    seeded: Seeded, clean_redis: str, tmp_path: Path
) -> None:
    env = central_env(seeded.db_url, clean_redis, tmp_path, METERIT_MCP_AUTH_FAILURES="3/minute")
    limited = HttpServer(env, tmp_path / "mcp.log")
    try:
        bad = MCP_HEADERS | {"Authorization": "Bearer mcp_guess"}
        codes = [
            requests.post(limited.url, json=INITIALIZE, headers=bad, timeout=10).status_code
            for _ in range(4)
        ]
        assert codes == [401, 401, 401, 429]
        good = MCP_HEADERS | {"Authorization": f"Bearer {seeded.tokens[ADMIN]}"}
        blocked = requests.post(limited.url, json=INITIALIZE, headers=good, timeout=10)
        assert blocked.status_code == 429 and int(blocked.headers["Retry-After"]) >= 1
    finally:
        assert limited.stop() == 0, limited.log()


def test_read_only_profile_hides_every_write_tool(
    seeded: Seeded, clean_redis: str, tmp_path: Path
) -> None:
    ro = HttpServer(
        central_env(seeded.db_url, clean_redis, tmp_path), tmp_path / "mcp.log", "--read-only"
    )
    try:
        assert set(tool_names(ro, seeded.tokens[ADMIN])) == READ_TOOLS
        text = refusal(call(ro, seeded.tokens[ADMIN], "configure_alert_rules", action="list"))
        assert "read-only" in text
    finally:
        assert ro.stop() == 0, ro.log()


def test_generate_report_then_get_report_gives_status_summary_and_link(
    server: HttpServer, seeded: Seeded
) -> None:
    token = seeded.tokens[OPERATOR]
    started = ok(
        call(server, token, "generate_report", period="day", day="2026-11-02", tz="Europe/Paris")
    )
    assert started["status"] == "queued" and started["summary"] is None
    assert started["link"].endswith(f"/reports/{started['report_id']}")
    # the worker's own step makes it, as meterit-central-worker does
    with psycopg.connect(seeded.db_url) as conn:
        assert runner.run_one(conn, seeded.db_url) == started["report_id"]
    done = ok(call(server, seeded.tokens[VIEWER], "get_report", report_id=started["report_id"]))
    assert done["status"] == "done" and done["files"] == ["pdf", "csv"]
    assert done["summary"]["sites"] == 2 and done["summary"]["energy_kwh"] is not None
    assert len(str(done)) < 10_000  # figures and a link, never the file
    assert "no report" in refusal(
        call(server, seeded.tokens[OTHER_ADMIN], "get_report", report_id=started["report_id"])
    )
    assert refusal(call(server, token, "generate_report", period="day", day="yesterday"))
    assert refusal(call(server, token, "generate_report", period="fortnight", day="2026-11-02"))
    assert "unknown tool" in refusal(
        call(server, seeded.tokens[VIEWER], "generate_report", period="day", day="2026-11-02")
    )
    outcomes = [d["outcome"] for _, d in audit_entries(seeded.db_url, "mcp.generate_report")]
    assert outcomes == ["ok"]
