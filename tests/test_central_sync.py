"""The sync API through real gunicorn, PostgreSQL and Redis: keys, readings, config, heartbeat."""

from __future__ import annotations

import gzip
import json
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

import psycopg
import requests

from central import rollup
from common.heartbeat import MAX_HEARTBEAT_BYTES
from common.wire import (
    SYNC_AUTH,
    SYNC_CONFIG,
    SYNC_HEARTBEAT,
    SYNC_READINGS,
    encode_batch,
    reading_item,
)
from tests import recent
from tests.central_fixtures import CentralServer, SiteKey
from tests.harness import scalar
from tests.recent import iso

# within the accept window whenever the suite runs (tests/recent.py)
T0 = recent.T0 + timedelta(days=22, hours=10)
POINTS = [("energy_kwh", "analog-input,1", "kWh"), ("power_kw", "analog-input,2", "kW")]


def post_batch(
    server: CentralServer, key: str, batch_id: str, items: list[dict[str, Any]]
) -> requests.Response:
    return requests.post(
        server.url(SYNC_READINGS),
        data=encode_batch(items),
        headers={
            "X-API-Key": key,
            "Idempotency-Key": batch_id,
            "Content-Type": "application/json",
            "Content-Encoding": "gzip",
        },
        timeout=30,
    )


def site_with_meter(server: CentralServer, name: str = "plant-1", meter: str = "main") -> SiteKey:
    site = server.create_site(name)
    server.add_meter(site.site_id, meter, POINTS)
    return site


def items(meter: str = "main", n: int = 10, start: datetime = T0) -> list[dict[str, Any]]:
    return [
        reading_item(meter, "energy_kwh", start + timedelta(minutes=i), 100.0 + i, "kWh")
        for i in range(n)
    ]


def count_readings(server: CentralServer) -> int:
    with psycopg.connect(server.db_url) as conn:
        return int(scalar(conn, "SELECT count(*) FROM readings"))


def test_api_keys_are_stored_only_as_hashes(central_server: CentralServer) -> None:
    site = central_server.create_site("plant-1")
    rotated = central_server.rotate_key(site.site_id, timedelta(hours=1))
    with psycopg.connect(central_server.db_url) as conn:
        dump = json.dumps(
            [list(map(str, r)) for r in conn.execute("SELECT * FROM api_keys").fetchall()]
        )
        audit = json.dumps(
            [list(map(str, r)) for r in conn.execute("SELECT * FROM audit_log").fetchall()]
        )
    for plaintext in (site.api_key, rotated):
        secret = plaintext.split("_", 2)[2]
        assert secret not in dump and secret not in audit
    assert site.key_prefix in dump


def test_auth_names_the_site_of_the_key(central_server: CentralServer) -> None:
    site = central_server.create_site("plant-1")
    answer = requests.post(
        central_server.url(SYNC_AUTH), headers={"X-API-Key": site.api_key}, timeout=10
    )
    assert answer.status_code == 200
    body = answer.json()
    assert body["site_id"] == site.site_id
    assert body["site_name"] == "plant-1"
    assert body["tenant"] == "test-tenant"


def test_missing_and_unknown_keys_get_401_saying_why(central_server: CentralServer) -> None:
    missing = requests.post(central_server.url(SYNC_AUTH), timeout=10)
    assert missing.status_code == 401
    assert "missing X-API-Key" in missing.json()["error"]
    unknown = requests.post(
        central_server.url(SYNC_AUTH), headers={"X-API-Key": "mtk_00000000_nope"}, timeout=10
    )
    assert unknown.status_code == 401
    assert "not recognised" in unknown.json()["error"]


def test_rotated_key_keeps_working_until_the_overlap_ends(central_server: CentralServer) -> None:
    site = central_server.create_site("plant-1")
    new_key = central_server.rotate_key(site.site_id, timedelta(seconds=2))

    def status(key: str) -> requests.Response:
        return requests.post(central_server.url(SYNC_AUTH), headers={"X-API-Key": key}, timeout=10)

    assert status(site.api_key).status_code == 200
    assert status(new_key).status_code == 200
    time.sleep(2.5)
    old = status(site.api_key)
    assert old.status_code == 401
    assert "expired" in old.json()["error"] and site.key_prefix in old.json()["error"]
    assert status(new_key).status_code == 200


def test_revoked_key_is_refused_at_once_with_a_clear_message(
    central_server: CentralServer,
) -> None:
    site = central_server.create_site("plant-1")
    central_server.revoke_keys(site.site_id)
    answer = requests.post(
        central_server.url(SYNC_AUTH), headers={"X-API-Key": site.api_key}, timeout=10
    )
    assert answer.status_code == 401
    assert "revoked" in answer.json()["error"]
    with psycopg.connect(central_server.db_url) as conn:
        actions = [r[0] for r in conn.execute("SELECT action FROM audit_log ORDER BY id")]
    assert actions[-1] == "key.revoke"
    assert "site.create" in actions


def test_batch_is_written_and_counted(central_server: CentralServer) -> None:
    site = site_with_meter(central_server)
    answer = post_batch(central_server, site.api_key, "b1", items(n=50))
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"accepted": 50, "duplicates": 0, "rejected": []}
    assert count_readings(central_server) == 50


def test_hourly_rollup_counts_each_stored_reading_once(central_server: CentralServer) -> None:
    site = site_with_meter(central_server)
    post_batch(central_server, site.api_key, "b1", items(n=90))
    post_batch(central_server, site.api_key, "b2", items(n=90))  # all duplicates
    with psycopg.connect(central_server.db_url) as conn:
        assert rollup.run_all(conn, settle=timedelta(0)) == 2  # 10:00 and 11:00
        assert rollup.run_all(conn, settle=timedelta(0)) == 0
        hours = conn.execute(
            "SELECT n, sum, min, max, first_value, last_value FROM readings_hourly ORDER BY hour"
        ).fetchall()
    assert hours == [
        (60, sum(100.0 + i for i in range(60)), 100.0, 159.0, 100.0, 159.0),
        (30, sum(100.0 + i for i in range(60, 90)), 160.0, 189.0, 160.0, 189.0),
    ]


def test_replayed_batch_answers_the_same_and_writes_nothing(
    central_server: CentralServer,
) -> None:
    site = site_with_meter(central_server)
    batch = items(n=20)
    first = post_batch(central_server, site.api_key, "b1", batch)
    replay = post_batch(central_server, site.api_key, "b1", batch)
    assert replay.json() == first.json() == {"accepted": 20, "duplicates": 0, "rejected": []}
    assert replay.headers.get("Idempotent-Replayed") == "true"
    # the same readings under a new batch id: nothing new, every one reported as a duplicate
    again = post_batch(central_server, site.api_key, "b2", batch)
    assert again.json() == {"accepted": 0, "duplicates": 20, "rejected": []}
    assert count_readings(central_server) == 20
    with psycopg.connect(central_server.db_url) as conn:
        assert scalar(conn, "SELECT count(*) FROM sync_batches") == 2


def test_a_stored_answer_is_only_its_own_sites_and_only_for_a_valid_key(
    central_server: CentralServer,
) -> None:
    """The key and the batch's stored answer are read in one lookup (``central.keys``): the
    answer belongs to the key's site alone, and a refused key gets its refusal, not the answer."""
    first = site_with_meter(central_server, "plant-1")
    other = site_with_meter(central_server, "plant-2")
    assert post_batch(central_server, first.api_key, "b1", items(n=20)).status_code == 200
    # another site's batch under the same id is its own first upload, not a replay
    mine = post_batch(central_server, other.api_key, "b1", items(n=5))
    assert mine.json() == {"accepted": 5, "duplicates": 0, "rejected": []}
    assert "Idempotent-Replayed" not in mine.headers
    central_server.revoke_keys(first.site_id)
    refused = post_batch(central_server, first.api_key, "b1", items(n=20))
    assert refused.status_code == 401 and "revoked" in refused.json()["error"]
    assert "accepted" not in refused.json()


def test_concurrent_requests_with_one_idempotency_key_write_once(
    central_server: CentralServer,
) -> None:
    site = site_with_meter(central_server)
    batch = items(n=500)
    with ThreadPoolExecutor(4) as pool:
        answers = list(
            pool.map(lambda _: post_batch(central_server, site.api_key, "same", batch), range(4))
        )
    assert all(a.status_code == 200 for a in answers)
    assert all(a.json() == {"accepted": 500, "duplicates": 0, "rejected": []} for a in answers)
    assert count_readings(central_server) == 500


def test_site_cannot_write_another_sites_meter(central_server: CentralServer) -> None:
    mine = site_with_meter(central_server, "plant-1", "main")
    central_server.add_meter(central_server.create_site("plant-2").site_id, "theirs", POINTS)
    answer = post_batch(central_server, mine.api_key, "b1", items("theirs", n=3))
    body = answer.json()
    assert body["accepted"] == 0
    assert [r["index"] for r in body["rejected"]] == [0, 1, 2]
    assert "'theirs' is not a meter of site 'plant-1'" in body["rejected"][0]["reason"]
    assert count_readings(central_server) == 0


def test_mixed_batch_writes_the_valid_and_names_each_invalid(
    central_server: CentralServer,
) -> None:
    site = site_with_meter(central_server)
    batch: list[Any] = items(n=3)
    batch += [
        {
            "meter": "main",
            "point": "energy_kwh",
            "ts": iso(T0 + timedelta(hours=2)).removesuffix("Z"),
            "value": 1,
            "unit": "kWh",
        },
        {
            "meter": "main",
            "point": "energy_kwh",
            "ts": iso(T0 + timedelta(hours=2, minutes=1)),
            "value": "7",
            "unit": "kWh",
        },
        {
            "meter": "main",
            "point": "nope",
            "ts": iso(T0 + timedelta(hours=2, minutes=2)),
            "value": 1,
            "unit": "kWh",
        },
        "not an object",
        {
            "meter": "main",
            "point": "energy_kwh",
            "ts": iso(T0 + timedelta(hours=2, minutes=3)),
            "value": 1,
            "unit": "Wh",
        },
        {
            "meter": "main",
            "point": "energy_kwh",
            "ts": "1970-01-01T00:00:00Z",
            "value": 1,
            "unit": "kWh",
        },
    ]
    answer = post_batch(central_server, site.api_key, "b1", batch)
    assert answer.status_code == 200
    body = answer.json()
    assert body["accepted"] == 3
    reasons = {r["index"]: r["reason"] for r in body["rejected"]}
    assert sorted(reasons) == [3, 4, 5, 6, 7, 8]
    assert reasons[3].startswith("ts:") and "time zone" in reasons[3]
    assert reasons[4].startswith("value:")
    assert reasons[5].startswith("point:")
    assert "expected an object" in reasons[6]
    assert reasons[7].startswith("unit:")
    assert reasons[8].startswith("ts:") and "clock" in reasons[8]
    assert count_readings(central_server) == 3


def _raw_post(server: CentralServer, key: str, data: bytes, **headers: str) -> requests.Response:
    return requests.post(
        server.url(SYNC_READINGS),
        data=data,
        headers={"X-API-Key": key, "Idempotency-Key": "raw", **headers},
        timeout=30,
    )


def test_malformed_bodies_get_4xx_naming_the_problem_and_write_nothing(
    make_central_server: Any,
) -> None:
    server = make_central_server(METERIT_MAX_BATCH_BYTES="100000")
    site = site_with_meter(server)
    gz = {"Content-Encoding": "gzip"}
    cases = [
        (_raw_post(server, site.api_key, b"{not json"), 400, "not valid JSON"),
        (_raw_post(server, site.api_key, b'{"readings": 5}'), 422, "readings: expected a list"),
        (_raw_post(server, site.api_key, b"[1, 2]"), 422, "expected a JSON object"),
        (_raw_post(server, site.api_key, b"\x1f\x8b garbage", **gz), 400, "not valid gzip"),
        (
            _raw_post(server, site.api_key, gzip.compress(b" " * 200_000), **gz),
            413,
            "decompressed body exceeds 100000 bytes",
        ),
        (_raw_post(server, site.api_key, b"x" * 150_000), 413, ""),
        (
            _raw_post(server, site.api_key, b'{"readings": [{"value": NaN}]}'),
            400,
            "not valid JSON",
        ),
        (_raw_post(server, site.api_key, b"{}", **{"Content-Encoding": "br"}), 415, "br"),
    ]
    for answer, status, words in cases:
        assert answer.status_code == status, answer.text
        assert words in answer.json()["error"]
    no_key = requests.post(
        server.url(SYNC_READINGS), data=b"{}", headers={"X-API-Key": site.api_key}, timeout=10
    )
    assert no_key.status_code == 400 and "Idempotency-Key" in no_key.json()["error"]
    assert count_readings(server) == 0
    with psycopg.connect(server.db_url) as conn:
        assert scalar(conn, "SELECT count(*) FROM sync_batches") == 0


def test_config_has_an_etag_and_answers_304_until_a_meter_changes(
    central_server: CentralServer,
) -> None:
    site = site_with_meter(central_server)
    headers = {"X-API-Key": site.api_key}
    first = requests.get(central_server.url(SYNC_CONFIG), headers=headers, timeout=10)
    assert first.status_code == 200
    meter = first.json()["meters"][0]
    assert meter["external_id"] == "main"
    assert meter["points"][0] == {
        "name": "energy_kwh",
        "object": "analog-input,1",
        "property": "present-value",
        "unit": "kWh",
    }
    etag = first.headers["ETag"]
    same = requests.get(
        central_server.url(SYNC_CONFIG), headers={**headers, "If-None-Match": etag}, timeout=10
    )
    assert same.status_code == 304 and same.content == b""
    central_server.add_meter(site.site_id, "second", POINTS)
    changed = requests.get(
        central_server.url(SYNC_CONFIG), headers={**headers, "If-None-Match": etag}, timeout=10
    )
    assert changed.status_code == 200
    assert changed.headers["ETag"] != etag
    assert len(changed.json()["meters"]) == 2


def test_readings_for_a_meter_added_later_are_accepted_without_restart(
    central_server: CentralServer,
) -> None:
    site = site_with_meter(central_server)
    refused = post_batch(central_server, site.api_key, "b1", items("late", n=2))
    assert refused.json()["accepted"] == 0
    central_server.add_meter(site.site_id, "late", POINTS)
    accepted = post_batch(central_server, site.api_key, "b2", items("late", n=2))
    assert accepted.json()["accepted"] == 2


def test_heartbeat_is_stored_with_the_site_status(central_server: CentralServer) -> None:
    site = site_with_meter(central_server)
    body = {
        "sent_at": "2026-11-23T10:00:00Z",
        "versions": {"meterit": "0.1.0"},
        "backlog": 12,
        "oldest_unsynced_age_s": 3.5,
        "dropped_readings": 0,
        "collection_paused": False,
        "upload_paused": False,
        "meters": [
            {
                "external_id": "main",
                "state": "reachable",
                "since": "2026-11-23T09:00:00Z",
                "last_error": None,
            }
        ],
    }
    answer = requests.post(
        central_server.url(SYNC_HEARTBEAT),
        json=body,
        headers={"X-API-Key": site.api_key},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    with psycopg.connect(central_server.db_url) as conn:
        stored = scalar(conn, "SELECT body FROM heartbeats WHERE site_id = %s", (site.site_id,))
        last = scalar(conn, "SELECT last_heartbeat_at FROM sites WHERE id = %s", (site.site_id,))
    assert stored == body
    assert last is not None
    bad = requests.post(
        central_server.url(SYNC_HEARTBEAT),
        json={"backlog": -1},
        headers={"X-API-Key": site.api_key},
        timeout=10,
    )
    assert bad.status_code == 422 and "backlog" in bad.json()["error"]


def test_a_heartbeat_breaking_the_contract_is_refused_and_not_stored(
    central_server: CentralServer,
) -> None:
    """Issue 16 item 7: a number as a meter's last error was stored and broke the site page."""
    site = site_with_meter(central_server)
    meter = {"external_id": "main", "state": "unreachable", "since": None, "last_error": 42}
    body = {
        "sent_at": "2026-11-23T10:00:00Z",
        "versions": {"meterit": "0.1.0"},
        "backlog": 0,
        "oldest_unsynced_age_s": None,
        "dropped_readings": 0,
        "collection_paused": False,
        "upload_paused": False,
        "meters": [meter],
    }
    bad = requests.post(
        central_server.url(SYNC_HEARTBEAT),
        json=body,
        headers={"X-API-Key": site.api_key},
        timeout=10,
    )
    assert bad.status_code == 422
    assert bad.json()["details"][0]["field"] == "meters[0].last_error"
    huge = requests.post(
        central_server.url(SYNC_HEARTBEAT),
        data=b" " * (MAX_HEARTBEAT_BYTES + 1),
        headers={"X-API-Key": site.api_key, "Content-Type": "application/json"},
        timeout=10,
    )
    assert huge.status_code == 413
    with psycopg.connect(central_server.db_url) as conn:
        assert scalar(conn, "SELECT count(*) FROM heartbeats") == 0
        assert scalar(conn, "SELECT last_status FROM sites WHERE id = %s", (site.site_id,)) is None


def test_overlapping_batches_sent_at_once_store_each_reading_once(
    central_server: CentralServer,
) -> None:
    site = site_with_meter(central_server)
    central_server.add_meter(site.site_id, "second", POINTS)
    batch = [
        reading_item(meter, point, T0 + timedelta(minutes=i), float(i), unit)
        for i in range(300)
        for meter in ("main", "second")
        for point, _, unit in POINTS
    ]
    halves = [batch[: len(batch) * 2 // 3], batch[len(batch) // 3 :]]  # a third in common
    with ThreadPoolExecutor(4) as pool:
        answers = list(
            pool.map(
                lambda i: post_batch(central_server, site.api_key, f"b{i}", halves[i % 2]),
                range(4),
            )
        )
    assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
    assert sum(a.json()["accepted"] for a in answers) == len(batch)
    assert count_readings(central_server) == len(batch)
