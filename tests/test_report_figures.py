"""Report figures from known synthetic data (``tests.report_data``), checked exactly: energy
across a counter reset and a meter replacement, peak demand and its time across the autumn
clock change, average load, load factor, the previous period, completeness with planted gaps,
and days in zones whose midnight is not on a UTC hour."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg
import pytest

from central.reports import build, schedules
from central.reports.period import Period
from tests import harness, report_data

DEMAND = timedelta(minutes=15)


@pytest.fixture(scope="module")
def data(
    pg_admin_url: str, central_template: str
) -> Iterator[tuple[psycopg.Connection[Any], dict[str, int]]]:
    with (
        harness.fresh_database(pg_admin_url, central_template) as url,
        psycopg.connect(url) as conn,
    ):
        ids = report_data.load(conn)
        yield conn, ids


def _report(data: Any, kind: str, day: date, tz: str = "Europe/Paris") -> dict[str, Any]:
    conn, ids = data
    return build.build(conn, ids["tenant"], None, period=Period.of(kind, day, tz), demand=DEMAND)


def _meter(site: dict[str, Any], external_id: str) -> dict[str, Any]:
    return next(m for m in site["meters"] if m["external_id"] == external_id)


def test_monthly_energy_counts_across_a_reset_and_a_replacement(data: Any) -> None:
    result = _report(data, "month", date(2026, 10, 1))
    site = result["sites"][0]
    main, sub = _meter(site, "main"), _meter(site, "sub")
    assert main["figures"]["energy_kwh"] == 745 * 30 + 22.5 - 0.5
    assert sub["figures"]["energy_kwh"] == 745 * 7.5 - 0.125
    assert site["figures"]["energy_kwh"] == 22372.0 + 5587.375
    assert result["fleet"]["figures"]["energy_kwh"] == 22372.0 + 5587.375
    # where the counters dropped, said with the local time (and both values between hours)
    assert main["resets"] == [
        {"at": "2026-10-20T12:30:00+02:00", "count": 1, "before": None, "after": None}
    ]
    assert sub["resets"] == [
        {
            "at": "2026-10-10T14:00:00+02:00",
            "count": 1,
            "before": 200
            + 0.125 * ((report_data.REPLACED - report_data.START) // report_data.MINUTE - 1),
            "after": 5.0,
        }
    ]


def test_peak_demand_is_the_highest_interval_with_its_local_time_after_clocks_go_back(
    data: Any,
) -> None:
    result = _report(data, "month", date(2026, 10, 1))
    site = result["sites"][0]
    # the site's peak is coincident: main's 2 kWh a minute plus sub's 0.125, over 15 minutes
    assert site["figures"]["peak_kw"] == (15 * 2.0 + 15 * 0.125) * 4 == 127.5
    assert site["figures"]["peak_start"] == "2026-10-25T02:30:00+01:00"
    assert site["figures"]["peak_end"] == "2026-10-25T02:45:00+01:00"
    assert _meter(site, "main")["figures"]["peak_kw"] == 120.0
    # sub is flat: its first full interval is its peak (the replacement's interval is void)
    assert _meter(site, "sub")["figures"]["peak_kw"] == 7.5
    assert _meter(site, "sub")["figures"]["peak_start"] == "2026-10-01T00:00:00+02:00"
    # the 2-hour gap's 60.5 kWh land in one interval, which is void: no 242 kW "peak"
    assert _meter(site, "main")["void_intervals"] == 2  # the gap's and the reset's


def test_average_load_load_factor_and_the_previous_month(data: Any) -> None:
    result = _report(data, "month", date(2026, 10, 1))
    site = result["sites"][0]
    energy = 22372.0 + 5587.375
    assert site["figures"]["avg_kw"] == energy / 745
    assert site["figures"]["load_factor"] == energy / 745 / 127.5
    assert site["previous"]["energy_kwh"] == 10800 + 5400
    assert site["previous"]["peak_kw"] == 22.5
    assert site["previous"]["avg_kw"] == 16200 / 720
    assert site["delta"]["energy_kwh"] == energy - 16200
    assert site["delta"]["energy_pct"] == 100 * (energy - 16200) / 16200
    assert site["delta"]["peak_kw"] == 127.5 - 22.5
    assert result["previous_period"]["label"] == "September 2026"


def test_daily_consumption_follows_local_days_including_the_25_hour_one(data: Any) -> None:
    daily = {
        d["date"]: d["kwh"] for d in _report(data, "month", date(2026, 10, 1))["sites"][0]["daily"]
    }
    assert len(daily) == 31
    assert daily["2026-10-01"] == 24 * 37.5
    assert daily["2026-10-05"] == 24 * 37.5  # the gap's energy lands when readings resume
    assert daily["2026-10-10"] == 24 * 37.5 - 0.125
    assert daily["2026-10-20"] == 24 * 37.5 - 0.5
    assert daily["2026-10-25"] == 25 * 37.5 + 22.5
    assert sum(daily.values()) == 22372.0 + 5587.375


def test_completeness_lists_the_planted_gaps(data: Any) -> None:
    site = _report(data, "month", date(2026, 10, 1))["sites"][0]
    comp = {(c["meter"], c["point"]): c for c in site["completeness"]}
    main = comp["main", "energy_kwh"]
    assert (main["expected"], main["present"]) == (745 * 4, 745 * 4 - 8)
    assert main["gaps"] == [
        {"start": "2026-10-05T08:00:00+02:00", "end": "2026-10-05T10:00:00+02:00", "minutes": 120}
    ]
    power = comp["main", "power_kw"]
    assert (power["present"], power["gap_count"]) == (745 * 4 - 96, 1)
    assert power["gaps"][0]["start"] == "2026-10-12T00:00:00+02:00"
    assert power["gaps"][0]["minutes"] == 1440
    sub = comp["sub", "energy_kwh"]
    assert (sub["pct"], sub["gaps"]) == (100.0, [])
    assert site["completeness_pct"] == 100 * (3 * 2980 - 8 - 96) / (3 * 2980)


def test_a_day_report_on_the_day_clocks_go_back_has_25_hours(data: Any) -> None:
    result = _report(data, "day", date(2026, 10, 25))
    site = result["sites"][0]
    assert site["figures"]["energy_kwh"] == 25 * 37.5 + 22.5
    assert site["figures"]["avg_kw"] == (25 * 37.5 + 22.5) / 25
    assert len(site["curve_kw"]) == 25 * 4
    assert max(v for v in site["curve_kw"] if v is not None) == 127.5
    assert site["completeness"][0]["expected"] == 100
    assert site["previous"]["energy_kwh"] == 24 * 37.5


def test_days_in_a_zone_45_minutes_off_the_hour(data: Any) -> None:
    site = _report(data, "day", date(2026, 10, 25), "Asia/Kathmandu")["sites"][0]
    assert site["figures"]["energy_kwh"] == 24 * 37.5 + 22.5
    assert site["figures"]["peak_start"] == "2026-10-25T07:15:00+05:45"
    quiet = _report(data, "day", date(2026, 10, 14), "Asia/Kathmandu")["sites"][0]
    assert quiet["figures"]["energy_kwh"] == 24 * 37.5
    assert quiet["completeness_pct"] == 100.0


def test_periods_know_their_length_and_previous_period() -> None:
    spring = Period.of("day", date(2026, 3, 29), "Europe/Paris")
    assert spring.hours == 23
    week = Period.of("week", date(2026, 10, 28), "Europe/Paris")
    assert (week.first_day, week.last_day) == (date(2026, 10, 26), date(2026, 11, 1))
    assert week.previous().first_day == date(2026, 10, 19)
    march = Period.of("month", date(2026, 3, 15), "America/New_York")
    assert march.hours == 31 * 24 - 1
    assert march.previous().label == "February 2026"
    custom = Period.of("custom", date(2026, 10, 3), "UTC", date(2026, 10, 12))
    assert (custom.previous().first_day, custom.previous().last_day) == (
        date(2026, 9, 23),
        date(2026, 10, 2),
    )


def test_a_schedule_requests_each_ended_period_once(data: Any) -> None:
    conn, ids = data
    created = datetime(2026, 9, 20, 12, tzinfo=UTC)
    with conn.transaction():
        sid = schedules.create(
            conn,
            ids["tenant"],
            {"cadence": "monthly", "time_zone": "Europe/Paris", "recipients": ["a@example.com"]},
            "cli",
            created,
        )
    # due an hour after September ends in Paris (22:00 UTC on 30 Sep)
    assert schedules.request_due(conn, datetime(2026, 9, 30, 22, 59, tzinfo=UTC)) == []
    # the worker was down until mid-November: September and October, once each
    first = schedules.request_due(conn, datetime(2026, 11, 15, tzinfo=UTC))
    assert schedules.request_due(conn, datetime(2026, 11, 15, tzinfo=UTC)) == []
    periods = conn.execute(
        "SELECT first_day, last_day, schedule_id FROM reports WHERE id = ANY(%s) ORDER BY id",
        (first,),
    ).fetchall()
    assert periods == [
        (date(2026, 9, 1), date(2026, 9, 30), sid),
        (date(2026, 10, 1), date(2026, 10, 31), sid),
    ]
    next_run = conn.execute(
        "SELECT next_run_at FROM report_schedules WHERE id = %s", (sid,)
    ).fetchone()
    assert next_run == (datetime(2026, 12, 1, 0, tzinfo=UTC),)  # 1 Dec 00:00 Paris + 1 h
    conn.execute("DELETE FROM reports WHERE schedule_id = %s", (sid,))
    conn.commit()


@pytest.mark.parametrize(
    ("kind", "day", "tz"),
    [("month", date(2026, 10, 1), "Europe/Paris"), ("day", date(2026, 10, 25), "Asia/Kathmandu")],
)
def test_whole_intervals_per_hour_give_the_same_report_as_slot_by_slot(
    data: Any, kind: str, day: date, tz: str
) -> None:
    conn, ids = data
    period = Period.of(kind, day, tz)
    fast = build.build(conn, ids["tenant"], None, period=period, demand=DEMAND)
    slow = build.build(conn, ids["tenant"], None, period=period, demand=DEMAND, aligned=False)
    del fast["generated_at"], slow["generated_at"]
    assert fast == slow


def test_the_workers_concurrent_way_gives_the_same_report_from_one_snapshot(data: Any) -> None:
    """The worker computes the period, the previous period and completeness at once on their
    own connections: the same report as one connection, and a change committed once the report
    has started is in none of its figures (every connection reads the snapshot taken first)."""
    conn, ids = data
    period = Period.of("month", date(2026, 10, 1), "Europe/Paris")
    alone = build.build(conn, ids["tenant"], None, period=period, demand=DEMAND)
    conn.commit()
    bump = """UPDATE readings_hourly SET slot_energy[1] = slot_energy[1] + %s
              WHERE point_id = %s AND hour = '2026-10-15 10:00+00'"""
    opened: list[psycopg.Connection[Any]] = []
    lock = threading.Lock()  # the aggregates' threads connect at the same time

    def connect() -> psycopg.Connection[Any]:
        with lock:
            if len(opened) == 1:  # the snapshot is taken: now 1,000 kWh more arrive
                with psycopg.connect(conn.info.dsn) as other:
                    other.execute(bump, (1000.0, ids["main_energy"]))
            opened.append(psycopg.connect(conn.info.dsn))
            return opened[-1]

    try:
        concurrent = build.build(
            conn, ids["tenant"], None, period=period, demand=DEMAND, connect=connect
        )
        after = build.build(conn, ids["tenant"], None, period=period, demand=DEMAND)
    finally:
        with psycopg.connect(conn.info.dsn) as other:
            other.execute(bump, (-1000.0, ids["main_energy"]))
        conn.rollback()
    assert len(opened) == 4  # the snapshot's and one for each aggregate
    assert after["fleet"]["figures"]["energy_kwh"] == alone["fleet"]["figures"]["energy_kwh"] + 1000
    del alone["generated_at"], concurrent["generated_at"]
    assert concurrent == alone
