"""One journal line per sync failure mode, and one when it is over, never one per retry.

Each failure is made for real against central under gunicorn: the link cut (a TCP proxy), the
site's key revoked on central, central's clock ten minutes off (an HTTP front that shifts its
Date), central served over TLS with a certificate the appliance does not trust. Then every sync
job (upload, heartbeat, meter config) runs several times, each with its own HTTP retries, and
the journal must hold exactly one WARNING/ERROR line naming the failure and its fix, with
``FAILURE``; once the cause is removed, exactly one line saying so."""

from __future__ import annotations

import logging
import socket
import threading
from datetime import timedelta
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest

from appliance import service
from appliance.settings import ApplianceSettings
from appliance.sync import failures, heartbeat
from appliance.sync.central import CentralClient, CentralError
from appliance.sync.meter_config import sync_meters
from appliance.sync.pump import drain
from common import logs, wire
from common.attempts import TooManyAttempts
from common.failures import Mode
from tests.central_fixtures import CentralServer, start_central_server
from tests.certs import self_signed
from tests.date_front import DateShiftingFront
from tests.sync_helpers import (
    CentralStandIn,
    add_readings,
    assert_edge_equals_central,
    edge_settings,
    site_with_meters,
    unsynced,
    with_settings,
)
from tests.tcp_proxy import TcpProxy

logger = logging.getLogger(__name__)

ROUNDS = 3  # sync rounds while broken: each is an upload, a heartbeat and a meter-config pull


@pytest.fixture(autouse=True)
def fresh_clock_watch(monkeypatch: pytest.MonkeyPatch) -> None:
    """The clock watch lives for the process, as in the worker; each test starts its own."""
    monkeypatch.setattr(failures, "clock_watch", failures.ClockWatch())


def sync_round(settings: ApplianceSettings) -> None:
    """What the worker's cron runs: every job that talks to central, once."""
    sync_meters(settings)
    add_readings(settings.database_url, 10)
    drain(settings)
    heartbeat.send(settings)


def assert_all_synced(settings: ApplianceSettings, central: CentralServer, site_id: int) -> None:
    """Nothing was lost: the batches left behind by failed runs go as orphans, one per run."""
    for _ in range(10):
        if drain(settings).stopped == "empty" and not unsynced(settings.database_url):
            break
    assert_edge_equals_central(settings.database_url, central, site_id)


def journal(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """What the appliance logged at INFO and above (the journal's default), then forget it."""
    records = [
        r for r in caplog.records if r.name.startswith("appliance.") and r.levelno >= logging.INFO
    ]
    caplog.clear()
    return records


def assert_one_failure_line(
    records: list[logging.LogRecord], mode: Mode, *named: str
) -> logging.LogRecord:
    bad = [r for r in records if r.levelno >= logging.WARNING]
    assert len(bad) == 1, [r.getMessage() for r in bad]
    (line,) = bad
    text = line.getMessage()
    assert line.levelno == mode.level and getattr(line, "failure", None) == mode.name, text
    assert text.startswith(mode.what) and mode.fix in text, text
    for word in named:
        assert word in text, text
    assert [r for r in records if getattr(r, "failure", None)] == [line]
    return line


def assert_one_recovery_line(records: list[logging.LogRecord], mode: Mode) -> str:
    assert not [r for r in records if r.levelno >= logging.WARNING], [
        r.getMessage() for r in records
    ]
    tagged = [r for r in records if getattr(r, "failure", None)]
    assert len(tagged) == 1, [r.getMessage() for r in records]
    assert tagged[0].levelno == logging.INFO and getattr(tagged[0], "failure", None) == mode.name
    assert tagged[0].getMessage().startswith(mode.back)
    return tagged[0].getMessage()


@pytest.fixture
def watched(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO)
    return caplog


def test_central_unreachable_is_one_line_and_one_when_back(
    central_server, edge_db_url: str, redis_url: str, watched: pytest.LogCaptureFixture
) -> None:
    site = site_with_meters(central_server)
    proxy = TcpProxy("127.0.0.1", int(central_server.base_url.rsplit(":", 1)[1]))
    settings = edge_settings(edge_db_url, redis_url, proxy.url, site)
    try:
        sync_round(settings)
        journal(watched)
        proxy.cut()
        for _ in range(ROUNDS):
            sync_round(settings)
        line = assert_one_failure_line(journal(watched), failures.UNREACHABLE, proxy.url)
        assert service.get_sync_status(settings)["connectivity"]["consecutive_failures"] >= ROUNDS
        proxy.mode = "pass"
        sync_round(settings)
        sync_round(settings)
        back = assert_one_recovery_line(journal(watched), failures.UNREACHABLE)
    finally:
        proxy.close()
    assert "failed tries" in back
    assert_all_synced(settings, central_server, site.site_id)
    logger.info("WARNING %s\nINFO %s", line.getMessage(), back)


def test_revoked_key_is_one_line_through_the_journal_and_one_when_replaced(
    central_server,
    edge_db_url: str,
    redis_url: str,
    watched: pytest.LogCaptureFixture,
    tmp_path: Path,
) -> None:
    site = site_with_meters(central_server)
    settings = edge_settings(edge_db_url, redis_url, central_server, site)
    sync_round(settings)
    journal(watched)
    # journald's own protocol on a socket of ours: the line as `journalctl -o verbose` has it
    path = str(tmp_path / "journal.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(path)
    handler = logs.JournalHandler("meterit-worker", socket_path=path)
    handler.setLevel(logging.WARNING)
    logging.getLogger().addHandler(handler)
    try:
        central_server.revoke_keys(site.site_id)
        # past central's ten refusals per key: then it answers 429 with a Retry-After of minutes,
        # the same failure (no second line) and no reason to hold the worker that long
        for _ in range(4):
            sync_round(settings)
        server.setblocking(False)
        datagrams = []
        while True:
            try:
                datagrams.append(server.recv(65536))
            except BlockingIOError:
                break
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()
        server.close()
    line = assert_one_failure_line(journal(watched), failures.KEY_REFUSED, "401")
    last = service.get_sync_status(settings)["connectivity"]["last_error"] or ""
    assert last.startswith(failures.KEY_REFUSED.what) and "answered 429" in last, last
    assert len(datagrams) == 1, datagrams
    entry = datagrams[0].decode()
    assert "\nFAILURE=key-refused\n" in entry and "\nPRIORITY=3\n" in entry, entry
    assert f"MESSAGE={line.getMessage()}\n" in entry
    new_key = central_server.rotate_key(site.site_id, timedelta(0))
    fixed = with_settings(settings, api_key=new_key)
    sync_round(fixed)
    sync_round(fixed)
    assert_one_recovery_line(journal(watched), failures.KEY_REFUSED)
    assert_all_synced(fixed, central_server, site.site_id)
    logger.info("journal entry:\n%s", entry)


def test_clock_skew_is_one_line_and_one_when_back(
    central_server, edge_db_url: str, redis_url: str, watched: pytest.LogCaptureFixture
) -> None:
    site = site_with_meters(central_server)
    front = DateShiftingFront(central_server.base_url)
    settings = edge_settings(edge_db_url, redis_url, front.url, site)
    try:
        sync_round(settings)
        assert not [r for r in journal(watched) if r.levelno >= logging.WARNING]
        front.shift_s = -600  # central's clock ten minutes behind: ours is ahead
        for _ in range(ROUNDS):
            sync_round(settings)
        line = assert_one_failure_line(journal(watched), failures.CLOCK_SKEW, "ahead of")
        # a drifting clock inside the gap between warning and "back" says nothing
        front.shift_s = -20
        sync_round(settings)
        assert not [r for r in journal(watched) if getattr(r, "failure", None)]
        front.shift_s = 0
        sync_round(settings)
        sync_round(settings)
        back = assert_one_recovery_line(journal(watched), failures.CLOCK_SKEW)
    finally:
        front.close()
    # readings and connectivity were never in question
    assert service.get_sync_status(settings)["connectivity"]["consecutive_failures"] == 0
    assert_all_synced(settings, central_server, site.site_id)
    logger.info("WARNING %s\nINFO %s", line.getMessage(), back)


def test_untrusted_certificate_is_one_line_and_one_when_trusted(
    central_db_url: str,
    edge_db_url: str,
    redis_url: str,
    tmp_path: Path,
    watched: pytest.LogCaptureFixture,
) -> None:
    cert, key = self_signed(tmp_path, days=2, name="central")
    central = start_central_server(central_db_url, redis_url, tmp_path, tls=(cert, key))
    try:
        site = site_with_meters(central)
        trusted = with_settings(
            edge_settings(edge_db_url, redis_url, central, site), ca_bundle=str(cert)
        )
        sync_round(trusted)
        journal(watched)
        untrusted = with_settings(trusted, ca_bundle=None)
        for _ in range(ROUNDS):
            sync_round(untrusted)
        line = assert_one_failure_line(
            journal(watched), failures.TLS, "CERTIFICATE_VERIFY_FAILED", "METERIT_CA_BUNDLE"
        )
        sync_round(trusted)
        sync_round(trusted)
        back = assert_one_recovery_line(journal(watched), failures.TLS)
        assert_all_synced(trusted, central, site.site_id)
    finally:
        central.stop()
    logger.info("ERROR %s\nINFO %s", line.getMessage(), back)


def test_a_key_locked_out_by_centrals_limiter_is_still_a_refused_key() -> None:
    """Central answers 429 once a key has failed too often; that is the same failure, so it
    must not be a second line (the 429's text comes from common.attempts)."""
    refusal = str(TooManyAttempts(120, "account"))
    assert failures.http_mode(429, (429, 503), refusal) is failures.KEY_REFUSED
    assert failures.http_mode(429, (429, 503), "rate limit exceeded") is failures.CENTRAL_FAILING
    assert failures.http_mode(401, (429, 503), "") is failures.KEY_REFUSED
    assert failures.http_mode(413, (429, 503), "") is failures.REFUSED


class _LockedOut(CentralStandIn):
    """Central's limiter's answer to a key that failed too often."""

    requests = 0

    def do_POST(self) -> None:
        _LockedOut.requests += 1
        answer = {"error": str(TooManyAttempts(300, "account"))}
        self.reply_json(429, answer, {"Retry-After": "300"})


def test_a_retry_after_of_minutes_ends_the_retries_at_once(
    edge_db_url: str, redis_url: str
) -> None:
    """A real HTTP server answering as central's limiter does: one request, not five retries
    each waiting five minutes (which would outlast the upload job's timeout)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _LockedOut)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _LockedOut.requests = 0
    url = f"http://127.0.0.1:{server.server_port}"
    settings = with_settings(edge_settings(edge_db_url, redis_url, url, None), api_key="k")
    try:
        with CentralClient(settings) as client, pytest.raises(CentralError) as err:
            client.post_readings(wire.encode_batch([]), "b1")
    finally:
        server.shutdown()
    assert _LockedOut.requests == 1
    assert err.value.status == 429 and err.value.mode is failures.KEY_REFUSED


def test_skew_is_only_what_falls_outside_the_request() -> None:
    """Central's Date (whole seconds) is read between our send and receive: a slow answer is no
    skew; a clock outside that window is skewed by at least the distance to it."""
    assert failures.skew_s(1000.0, sent=995.0, received=1030.0) == 0.0
    assert failures.skew_s(1000.0, sent=1601.0, received=1601.2) == 600.0
    assert failures.skew_s(1000.0, sent=400.0, received=400.5) == -599.5
