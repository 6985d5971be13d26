"""The local UI's JSON endpoints for scripts (HTTP Basic, real gunicorn) and its own reads."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import requests

from tests.web_fixtures import (
    PASSWORD,
    Appliance,
    add_past_readings,
)
from web import queries

AUTH = ("admin", PASSWORD)


def _meter(appliance: Appliance, external_id: str = "m-1") -> None:
    appliance.sql(
        "INSERT INTO meters (external_id, name, address) VALUES (%s, 'Incomer', '10.0.0.5')",
        (external_id,),
    )
    for instance, (name, unit) in enumerate([("energy_kwh", "kWh"), ("power_kw", "kW")], 1):
        appliance.sql(
            "INSERT INTO meter_points (meter_id, name, object_type, object_instance, unit)"
            " SELECT id, %s, 'analog-input', %s, %s FROM meters WHERE external_id = %s",
            (name, instance, unit, external_id),
        )


def test_meters_answer_status_and_newest_values(web_only: Appliance) -> None:
    _meter(web_only)
    add_past_readings(web_only.settings.database_url, 120, days_back=0.1)
    body = requests.get(web_only.web_url + "/api/local/meters", auth=AUTH, timeout=10).json()
    (meter,) = body["meters"]
    assert meter["external_id"] == "m-1" and meter["state"] == "unknown"
    assert [v["point"] for v in meter["values"]] == ["energy_kwh", "power_kw"]
    assert meter["values"][1]["unit"] == "kW" and meter["values"][1]["ts"].endswith("Z")
    assert meter["backlog"] == 240


def test_readings_page_through_and_refuse_unbounded_queries(web_only: Appliance) -> None:
    _meter(web_only)
    add_past_readings(web_only.settings.database_url, 120, days_back=0.1)
    url = web_only.web_url + "/api/local/readings"
    seen = []
    params: dict[str, str] = {"meter": "m-1", "point": "power_kw", "hours": "3", "limit": "50"}
    while True:
        page = requests.get(url, params=params, auth=AUTH, timeout=10).json()
        seen += page["items"]
        if not page["next_cursor"]:
            break
        params["cursor"] = page["next_cursor"]
    assert len(seen) == 120 and len({r["ts"] for r in seen}) == 120
    assert [r["ts"] for r in seen] == sorted(r["ts"] for r in seen)

    open_ended = requests.get(url, params={"meter": "m-1"}, auth=AUTH, timeout=10)
    assert open_ended.status_code == 400 and "unbounded" in open_ended.json()["error"]
    too_long = requests.get(url, params={"meter": "m-1", "hours": "2000"}, auth=AUTH, timeout=10)
    assert too_long.status_code == 400 and "31 days" in too_long.json()["error"]
    unknown = requests.get(url, params={"meter": "m-9", "hours": "1"}, auth=AUTH, timeout=10)
    assert unknown.status_code == 404 and "m-9" in unknown.json()["error"]


def test_series_averages_per_bucket(web_only: Appliance) -> None:
    _meter(web_only)
    add_past_readings(web_only.settings.database_url, 240, days_back=0.25)
    body = requests.get(
        web_only.web_url + "/api/local/series",
        params={"meter": "m-1", "point": "power_kw", "hours": "24", "buckets": "144"},
        auth=AUTH,
        timeout=10,
    ).json()
    assert body["bucket_s"] == 600 and body["unit"] == "kW"
    assert 24 <= len(body["t"]) <= 26  # 4 h of readings in 10-minute buckets
    assert all(
        lo <= avg <= hi for lo, avg, hi in zip(body["min"], body["avg"], body["max"], strict=True)
    )


def test_scripts_act_with_basic_auth_and_see_errors_clearly(web_only: Appliance) -> None:
    trigger = web_only.web_url + "/api/local/sync-trigger"
    paused = requests.post(trigger, json={"action": "pause_collection"}, auth=AUTH, timeout=10)
    assert paused.status_code == 202 and paused.json()["status"]["collection_paused"] is True
    bad = requests.post(trigger, json={"action": "explode"}, auth=AUTH, timeout=10)
    assert bad.status_code == 400 and "pause_upload" in bad.json()["error"]
    meters = requests.post(
        web_only.web_url + "/api/local/meter-sync-trigger", auth=AUTH, timeout=10
    )
    assert meters.status_code == 409 and "not enrolled" in meters.json()["error"]
    status = requests.get(web_only.web_url + "/api/local/sync-status", auth=AUTH, timeout=10)
    assert status.json()["synced"] == {"last_hour": 0, "last_day": 0}


def test_bucket_width_keeps_charts_within_their_budget() -> None:
    start = datetime(2026, 11, 1, tzinfo=UTC)
    assert queries.bucket_seconds(start, start + timedelta(hours=1), 300) == 15
    assert queries.bucket_seconds(start, start + timedelta(hours=24), 144) == 600
    assert queries.bucket_seconds(start, start + timedelta(days=7), 400) == 1800


def test_newest_values_follow_each_collector_commit(edge_db_url: str) -> None:
    with psycopg.connect(edge_db_url, autocommit=True) as conn:
        conn.execute("INSERT INTO meters (external_id, address) VALUES ('m-1', '10.0.0.5')")
        conn.execute(
            "INSERT INTO meter_points (meter_id, name, object_type, object_instance)"
            " VALUES (1, 'power_kw', 'analog-input', 1)"
        )
        assert queries.latest_values(conn)[1][0]["value"] is None
        # what the collector does in one transaction: the reading and the meter's status
        with conn.transaction():
            conn.execute(
                "INSERT INTO readings (meter_id, point_id, ts, value) VALUES (1, 1, now(), 42)"
            )
            conn.execute("INSERT INTO meter_status (meter_id, state) VALUES (1, 'reachable')")
        assert queries.latest_values(conn)[1][0]["value"] == 42
