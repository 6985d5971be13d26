"""Hostile input to central's APIs is refused in a bounded way: deep nesting, huge values,
chunked bodies past the cap, timestamps far from now, a shared per-site budget, readings of a
deactivated meter (issue #16, items 6, 8, 10, 11, 12, 14)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import requests

from common.wire import SYNC_AUTH, SYNC_CONFIG, SYNC_HEARTBEAT, SYNC_READINGS, reading_item
from tests.central_fixtures import CentralServer
from tests.harness import scalar
from tests.recent import iso
from tests.test_central_sync import T0, count_readings, post_batch, site_with_meter

PASSWORD = "correct horse battery"
DEPTH = 1000  # what the probe sent: deep enough for repr(), not for orjson's own limit of 1024


def nested(depth: int = DEPTH) -> str:
    return "[" * depth + "]" * depth


def raw_json(server: CentralServer, path: str, body: str, **headers: str) -> requests.Response:
    return requests.post(
        server.url(path),
        data=body.encode(),
        headers={"Content-Type": "application/json", **headers},
        timeout=30,
    )


def token(server: CentralServer, role: str = "operator") -> str:
    email = f"{role}@example.com"
    server.create_user(email, PASSWORD, role)
    answer = requests.post(server.url("/api/v1/auth/token"), auth=(email, PASSWORD), timeout=10)
    return str(answer.json()["token"])


def test_deeply_nested_json_gets_4xx_naming_the_item_not_a_500(
    central_server: CentralServer,
) -> None:
    site = site_with_meter(central_server)
    key = {"X-API-Key": site.api_key}
    item = '{"meter": "main", "point": "energy_kwh", "ts": "' + iso(T0) + '", "value": '
    ok = json.dumps(reading_item("main", "energy_kwh", T0 + timedelta(hours=1), 1, "kWh"))
    readings = raw_json(
        central_server,
        SYNC_READINGS,
        '{"readings": [' + item + nested() + ', "unit": "kWh"}, ' + ok + "]}",
        **key,
        **{"Idempotency-Key": "deep"},
    )
    assert readings.status_code == 200, readings.text
    assert readings.json()["accepted"] == 1
    [rejected] = readings.json()["rejected"]
    assert rejected["index"] == 0 and rejected["reason"].startswith("value:")
    assert "list of 1 item" in rejected["reason"]

    heartbeat = raw_json(central_server, SYNC_HEARTBEAT, '{"backlog": ' + nested() + "}", **key)
    assert heartbeat.status_code == 422, heartbeat.text
    assert "backlog" in heartbeat.json()["error"]

    bearer = {"Authorization": "Bearer " + token(central_server)}
    meter = (
        f'{{"site_id": {site.site_id}, "external_id": {nested()}, "address": "127.0.0.1:47808",'
        f' "points": [{{"name": {nested()}, "object": "analog-input,1"}}]}}'
    )
    created = raw_json(central_server, "/api/v1/meters", meter, **bearer)
    assert created.status_code == 422, created.text
    fields = {d["field"] for d in created.json()["details"]}
    assert {"external_id", "points[0].name"} <= fields
    assert "Traceback" not in central_server.log()


def test_a_huge_bad_value_is_echoed_stored_and_logged_only_in_part(
    central_server: CentralServer,
) -> None:
    site = site_with_meter(central_server)
    huge = "x" * (4 * 1024 * 1024)
    bad = {"meter": "main", "point": "energy_kwh", "ts": huge, "value": 1.0, "unit": "kWh"}
    answer = post_batch(central_server, site.api_key, "huge", [bad])
    assert answer.status_code == 200, answer.text[:500]
    assert len(answer.content) < 1000
    reason = answer.json()["rejected"][0]["reason"]
    assert reason.startswith("ts:") and f"{len(huge)} characters" in reason
    with psycopg.connect(central_server.db_url) as conn:
        stored = scalar(conn, "SELECT length(response::text) FROM sync_batches")
    assert stored < 1000
    assert max(len(line) for line in central_server.log().splitlines()) < 2000

    unknown_meter = dict(bad, ts=iso(T0), meter="m" * 100, unit=huge)
    answer = post_batch(central_server, site.api_key, "huge-unit", [unknown_meter])
    assert len(answer.content) < 1000


def test_a_chunked_body_over_the_cap_gets_413_and_writes_nothing(
    make_central_server: Any,
) -> None:
    server: CentralServer = make_central_server(METERIT_MAX_BATCH_BYTES="100000")
    site = site_with_meter(server)
    item = json.dumps(reading_item("main", "energy_kwh", T0, 1, "kWh"))

    def chunks() -> Iterator[bytes]:
        # valid JSON all along: a body cut at the cap would still parse if padded right
        yield b'{"readings": [' + item.encode()
        for _ in range(200):
            yield b"," + b" " * 1000 + item.encode()
        yield b"]}"

    answer = requests.post(
        server.url(SYNC_READINGS),
        data=chunks(),  # a generator: requests sends Transfer-Encoding: chunked
        headers={
            "X-API-Key": site.api_key,
            "Idempotency-Key": "chunked",
            "Content-Type": "application/json",
        },
        timeout=30,
    )
    assert answer.request.headers.get("Transfer-Encoding") == "chunked"
    assert answer.status_code == 413, answer.text
    assert "100000" in answer.json()["error"]
    assert count_readings(server) == 0

    small = requests.post(
        server.url(SYNC_READINGS),
        data=iter([b'{"readings": [', item.encode(), b"]}"]),
        headers={
            "X-API-Key": site.api_key,
            "Idempotency-Key": "small-chunked",
            "Content-Type": "application/json",
        },
        timeout=30,
    )
    assert small.status_code == 200 and small.json()["accepted"] == 1


def test_readings_outside_the_accepted_range_are_refused_and_make_no_partitions(
    make_central_server: Any,
) -> None:
    server: CentralServer = make_central_server(METERIT_ACCEPT_PAST_DAYS="60")
    site = site_with_meter(server)
    now = datetime.now(UTC).replace(microsecond=0)
    with psycopg.connect(server.db_url) as conn:
        partitions_before = scalar(
            conn, "SELECT count(*) FROM pg_inherits WHERE inhparent = 'readings'::regclass"
        )
    batch = [
        reading_item("main", "energy_kwh", now - timedelta(days=30), 1.0, "kWh"),
        reading_item("main", "energy_kwh", datetime(2001, 1, 1, tzinfo=UTC), 2.0, "kWh"),
        reading_item("main", "energy_kwh", now - timedelta(days=61), 3.0, "kWh"),
        reading_item("main", "energy_kwh", now + timedelta(days=2), 4.0, "kWh"),
    ]
    answer = post_batch(server, site.api_key, "range", batch)
    assert answer.status_code == 200, answer.text
    assert answer.json()["accepted"] == 1
    reasons = {r["index"]: r["reason"] for r in answer.json()["rejected"]}
    assert sorted(reasons) == [1, 2, 3]
    assert all("METERIT_ACCEPT_PAST_DAYS" in reasons[i] for i in (1, 2))
    assert "METERIT_ACCEPT_FUTURE_HOURS" in reasons[3]
    with psycopg.connect(server.db_url) as conn:
        bounds = [
            r[0]
            for r in conn.execute(
                """SELECT pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i
                   JOIN pg_class c ON c.oid = i.inhrelid
                   WHERE i.inhparent = 'readings'::regclass"""
            )
        ]
        partitions_after = scalar(
            conn, "SELECT count(*) FROM pg_inherits WHERE inhparent = 'readings'::regclass"
        )
    assert partitions_after - partitions_before <= 3, bounds
    assert not any("2001-" in b for b in bounds), bounds


def test_the_sync_rate_limit_is_one_budget_per_site_across_endpoints(
    make_central_server: Any,
) -> None:
    server: CentralServer = make_central_server(METERIT_RATE_LIMIT="4/minute")
    busy = server.create_site("busy")
    quiet = server.create_site("quiet")
    key = {"X-API-Key": busy.api_key}
    first = requests.post(server.url(SYNC_AUTH), headers=key, timeout=10)
    assert first.status_code == 200
    assert "Retry-After" not in first.headers  # only a 429 (or 503) says when to come back
    assert requests.get(server.url(SYNC_CONFIG), headers=key, timeout=10).status_code == 200
    beat = {
        "sent_at": "2026-11-23T10:00:00Z",
        "versions": {"meterit": "0.1.0"},
        "backlog": 0,
        "oldest_unsynced_age_s": None,
        "dropped_readings": 0,
        "collection_paused": False,
        "upload_paused": False,
        "meters": [],
    }
    heartbeat = requests.post(server.url(SYNC_HEARTBEAT), json=beat, headers=key, timeout=10)
    assert heartbeat.status_code == 200, heartbeat.text
    assert post_batch(server, busy.api_key, "b1", []).status_code == 200
    limited = requests.get(server.url(SYNC_CONFIG), headers=key, timeout=10)
    assert limited.status_code == 429
    assert int(limited.headers["Retry-After"]) > 0
    quiet_answer = requests.get(
        server.url(SYNC_CONFIG), headers={"X-API-Key": quiet.api_key}, timeout=10
    )
    assert quiet_answer.status_code == 200


def test_readings_of_a_deactivated_meter_are_kept_up_to_the_deactivation_only(
    central_server: CentralServer,
) -> None:
    site = site_with_meter(central_server)
    now = datetime.now(UTC).replace(microsecond=0)
    before = [
        reading_item("main", "energy_kwh", now - timedelta(hours=2, minutes=i), i, "kWh")
        for i in range(3)
    ]
    with psycopg.connect(central_server.db_url) as conn:
        meter_id = scalar(conn, "SELECT id FROM meters WHERE external_id = 'main'")
    bearer = {"Authorization": "Bearer " + token(central_server)}
    gone = requests.delete(
        central_server.url(f"/api/v1/meters/{meter_id}"), headers=bearer, timeout=10
    )
    assert gone.status_code == 200 and gone.json()["active"] is False
    assert gone.json()["deactivated_at"] is not None
    after = [reading_item("main", "energy_kwh", now + timedelta(minutes=5), 9.0, "kWh")]
    # collected before the deactivation, uploaded after it (an appliance catching up): kept
    answer = post_batch(central_server, site.api_key, "late", before + after)
    assert answer.status_code == 200, answer.text
    assert answer.json()["accepted"] == 3
    [refused] = answer.json()["rejected"]
    assert refused["index"] == 3 and "deactivated" in refused["reason"]
    assert count_readings(central_server) == 3
