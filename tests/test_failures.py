"""The one-line-per-change rule of :mod:`common.failures`, with a driven clock."""

from __future__ import annotations

import logging

import pytest

from common import failures


def test_an_outage_is_one_line_each_way_however_many_retries(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [100.0]
    outages = failures.Outages(logging.getLogger("test.failures"), clock=lambda: now[0])
    caplog.set_level(logging.INFO, "test.failures")
    for _ in range(50):
        outages.failing(failures.REDIS_DOWN, "Connection refused", "jobs wait")
        now[0] += 1
    assert outages.recovered(failures.REDIS_DOWN, "jobs are taken again")
    assert not outages.recovered(failures.REDIS_DOWN)
    assert [(r.levelname, r.getMessage(), r.failure) for r in caplog.records] == [  # type: ignore[attr-defined]
        (
            "ERROR",
            "Redis unreachable: Connection refused; jobs wait — " + failures.REDIS_DOWN.fix,
            "redis-down",
        ),
        ("INFO", "Redis answers again after 50 s; jobs are taken again", "redis-down"),
    ]


def test_each_meter_is_its_own_outage() -> None:
    outages = failures.Outages(logging.getLogger("test.failures"))
    assert outages.failing(failures.METER_UNREACHABLE, "m1", meter_id=1)
    assert outages.failing(failures.METER_UNREACHABLE, "m2", meter_id=2)
    assert not outages.failing(failures.METER_UNREACHABLE, "m1", meter_id=1)
    assert outages.recovered(failures.METER_UNREACHABLE, meter_id=2)
    assert outages.active(failures.METER_UNREACHABLE, 1)
    assert not outages.active(failures.METER_UNREACHABLE, 2)
