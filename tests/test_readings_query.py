"""The bounded, paginated readings query the local UI and the MCP server share."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from appliance.readings_query import (
    MAX_LIMIT,
    ReadingsQueryError,
    UnknownMeter,
    UnknownPoint,
    query_readings,
)
from appliance.settings import ApplianceSettings

T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


@pytest.fixture
def settings(edge_db_url: str) -> ApplianceSettings:
    """Meter m-1 with two points, a reading per point per minute for an hour, half synced."""
    with psycopg.connect(edge_db_url) as conn:
        meter_id = conn.execute(
            "INSERT INTO meters (external_id, address) VALUES ('m-1', '127.0.0.1') RETURNING id"
        ).fetchone()[0]  # type: ignore[index]
        conn.execute("INSERT INTO meters (external_id, address) VALUES ('m-2', '127.0.0.2')")
        for name, otype in (("energy_kwh", 1), ("power_kw", 2)):
            point_id = conn.execute(
                "INSERT INTO meter_points (meter_id, name, object_type, object_instance, unit)"
                " VALUES (%s, %s, 'analog-input', %s, %s) RETURNING id",
                (meter_id, name, otype, "kWh" if otype == 1 else "kW"),
            ).fetchone()[0]  # type: ignore[index]
            for i in range(60):
                conn.execute(
                    "INSERT INTO readings (meter_id, point_id, ts, value) VALUES (%s, %s, %s, %s)",
                    (meter_id, point_id, T0 + timedelta(minutes=i), float(i)),
                )
        # the first half synced: out of the upload queue
        conn.execute(
            "DELETE FROM upload_queue WHERE id IN (SELECT id FROM readings WHERE ts < %s)",
            (T0 + timedelta(minutes=30),),
        )
    return ApplianceSettings(database_url=edge_db_url)


def test_pages_cover_the_range_once_in_time_order(settings: ApplianceSettings) -> None:
    seen = []
    cursor = None
    pages = 0
    while True:
        page = query_readings(
            settings, "m-1", start=T0, end=T0 + timedelta(hours=1), limit=25, cursor=cursor
        )
        seen += page["items"]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 5  # 120 readings, 25 a page
    assert len(seen) == 120
    assert [r["ts"] for r in seen] == sorted(r["ts"] for r in seen)
    assert {(r["ts"], r["point"]) for r in seen} == {
        (T0 + timedelta(minutes=i), p) for i in range(60) for p in ("energy_kwh", "power_kw")
    }
    assert sum(r["synced"] for r in seen) == 60


def test_one_point_and_end_is_exclusive(settings: ApplianceSettings) -> None:
    page = query_readings(
        settings, "m-1", point="power_kw", start=T0, end=T0 + timedelta(minutes=10), limit=MAX_LIMIT
    )
    assert [r["value"] for r in page["items"]] == [float(i) for i in range(10)]
    assert {r["unit"] for r in page["items"]} == {"kW"}
    assert page["next_cursor"] is None


def test_a_connection_can_be_passed_instead_of_settings(settings: ApplianceSettings) -> None:
    with psycopg.connect(settings.database_url) as conn:
        page = query_readings(conn, "m-2", start=T0, end=T0 + timedelta(hours=1), limit=10)
    assert page["items"] == []


@pytest.mark.parametrize(
    ("kwargs", "says"),
    [
        ({"limit": MAX_LIMIT + 1}, f"ask for 1 to {MAX_LIMIT}"),
        ({"limit": 0}, f"ask for 1 to {MAX_LIMIT}"),
        ({"start": T0 + timedelta(hours=2)}, "swap them"),
        ({"end": T0 + timedelta(days=40)}, "narrow it"),
        ({"start": datetime(2026, 11, 23, 10)}, "has no time zone"),
        ({"cursor": "not-a-cursor"}, "pass next_cursor from the previous page unchanged"),
    ],
)
def test_unanswerable_queries_say_what_to_change(
    settings: ApplianceSettings, kwargs: dict, says: str
) -> None:
    args = {
        "meter": "m-1",
        "point": None,
        "start": T0,
        "end": T0 + timedelta(hours=1),
        "limit": 10,
        "cursor": None,
    } | kwargs
    with pytest.raises(ReadingsQueryError, match=says):
        query_readings(settings, **args)


def test_unknown_meter_and_point_list_the_known_ones(settings: ApplianceSettings) -> None:
    end = T0 + timedelta(hours=1)
    with pytest.raises(UnknownMeter, match="known meters: m-1, m-2"):
        query_readings(settings, "m-9", start=T0, end=end, limit=10)
    with pytest.raises(UnknownPoint, match="its points are: energy_kwh, power_kw"):
        query_readings(settings, "m-1", point="voltage", start=T0, end=end, limit=10)
