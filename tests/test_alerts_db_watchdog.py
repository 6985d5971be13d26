"""The worker's database watchdog against a real PostgreSQL behind a real TCP proxy (closed to
make the database unreachable) and a real SMTP server (aiosmtpd); the clock is driven, not
slept: one "unreachable" e-mail past the threshold, one "resolved" e-mail when it answers."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from central.alerts.db_watchdog import DbWatchdog
from central.settings import CentralSettings
from tests.smtp_capture import SmtpServer
from tests.tcp_proxy import TcpProxy

T0 = datetime(2026, 12, 2, 3, 0, tzinfo=UTC)
OPS = ["ops@example.com", "oncall@example.com"]


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def at(self, seconds: float) -> Clock:
        self.now = T0 + timedelta(seconds=seconds)
        return self


@pytest.fixture
def proxy(central_db_url: str) -> Iterator[TcpProxy]:
    info = conninfo_to_dict(central_db_url)
    host = str(info.get("host") or "")
    if not host or host.startswith("/"):
        # the embedded PostgreSQL listens on a Unix socket only; CI runs it on TCP
        pytest.skip("needs PostgreSQL over TCP to put a proxy in front of it")
    proxy = TcpProxy(host, int(info.get("port") or 5432))
    try:
        yield proxy
    finally:
        proxy.close()


def watchdog(
    central_db_url: str, proxy: TcpProxy, smtp: SmtpServer, clock: Clock, **overrides: Any
) -> DbWatchdog:
    url = make_conninfo(central_db_url, host="127.0.0.1", port=str(proxy.port))
    settings = CentralSettings(
        database_url=url,
        smtp_host="127.0.0.1",
        smtp_port=smtp.port,
        smtp_security="none",
        smtp_timeout_s=5,
        **({"alert_fallback_recipients": ", ".join(OPS)} | overrides),
    )
    return DbWatchdog(settings, clock=clock)


def test_one_alarm_after_the_threshold_and_one_resolved_when_it_answers(
    central_db_url: str, proxy: TcpProxy, smtp_server: SmtpServer
) -> None:
    clock = Clock()
    dog = watchdog(central_db_url, proxy, smtp_server, clock)
    dog.check()  # answering: nothing to say
    assert dog.down_since is None and smtp_server.messages == []

    proxy.cut()  # PostgreSQL unreachable from the worker
    for second in (0, 60, 119):
        clock.at(second)
        dog.check()
    assert dog.down_since == T0 and smtp_server.messages == []  # not yet: 120 s by default

    for second in (120, 130, 600, 3600):  # past the threshold: once, however long it lasts
        clock.at(second)
        dog.check()
    alarms = smtp_server.messages
    assert sorted(r for m in alarms for r in m.rcpt_tos) == sorted(OPS)
    assert {m.subject for m in alarms} == {
        "[MeterIT] CRITICAL central: database unreachable since 03:00 UTC"
    }
    assert "has not answered since 2026-12-02 03:00:00 UTC (2 min)" in alarms[0].text()
    assert "password" not in alarms[0].text()

    proxy.mode = "pass"  # it answers again
    for second in (3610, 3620, 3700):
        clock.at(second)
        dog.check()
    resolved = smtp_server.messages[len(alarms) :]
    assert sorted(r for m in resolved for r in m.rcpt_tos) == sorted(OPS)
    assert {m.subject for m in resolved} == {"[MeterIT] RESOLVED central: database answers again"}
    assert "unreachable from 2026-12-02 03:00:00 UTC (1 h 0 min)" in resolved[0].text()
    assert dog.down_since is None and dog.alarm_for is None


def test_a_short_outage_sends_nothing(
    central_db_url: str, proxy: TcpProxy, smtp_server: SmtpServer
) -> None:
    clock = Clock()
    dog = watchdog(central_db_url, proxy, smtp_server, clock, alert_db_down_s=300)
    proxy.cut()
    for second in (0, 120, 299):
        clock.at(second)
        dog.check()
    proxy.mode = "pass"
    clock.at(310)
    dog.check()
    assert smtp_server.messages == [] and dog.down_since is None


def test_an_unreachable_smtp_server_is_retried_until_it_has_the_alarm(
    central_db_url: str, proxy: TcpProxy, smtp_server: SmtpServer
) -> None:
    clock = Clock()
    dog = watchdog(central_db_url, proxy, smtp_server, clock)
    proxy.cut()
    dog.check()
    smtp_server.stop()
    clock.at(200)
    dog.check()
    assert dog.alarm_for is None  # not sent: still owed
    smtp_server.start()
    clock.at(210)
    dog.check()
    clock.at(220)
    dog.check()
    assert sorted(r for m in smtp_server.messages for r in m.rcpt_tos) == sorted(OPS)
    assert dog.alarm_for == T0


def test_without_fallback_recipients_nothing_is_sent_and_the_journal_says_so_once(
    central_db_url: str,
    proxy: TcpProxy,
    smtp_server: SmtpServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    dog = watchdog(central_db_url, proxy, smtp_server, clock, alert_fallback_recipients="")
    proxy.cut()
    with caplog.at_level(logging.ERROR, logger="central.alerts.db_watchdog"):
        for second in (0, 130, 140, 900):
            clock.at(second)
            dog.check()
    said = [r.getMessage() for r in caplog.records if "RECIPIENTS is empty" in r.getMessage()]
    assert said == [
        "central database "
        f"{dog.database} unreachable for 2 min and no e-mail sent: "
        "METERIT_ALERT_FALLBACK_RECIPIENTS is empty"
    ]
    assert smtp_server.messages == []


def test_a_bad_fallback_address_stops_the_start_naming_the_setting() -> None:
    from central.settings import load_settings
    from common.config import ConfigError

    with pytest.raises(ConfigError, match="METERIT_ALERT_FALLBACK_RECIPIENTS"):
        load_settings({"METERIT_ALERT_FALLBACK_RECIPIENTS": "ops@example.com, not-an-address"})
