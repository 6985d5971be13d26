"""The e-mail outbox against a real SMTP server (aiosmtpd): queued mail is delivered with its
parts, survives an SMTP outage, shows refusals, and the hourly cap rolls the rest into a digest.
Time is passed in, so hours of backoff and caps take no real time."""

from __future__ import annotations

import ssl
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from central import locks
from central.mail import drain, outbox
from central.mail.smtp import SmtpConfig, SmtpTransport
from central.settings import load_settings
from tests.central_fixtures import central_env, run_central_worker
from tests.certs import self_signed
from tests.smtp_capture import SmtpServer

T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
PDF = b"%PDF-1.4 not really a pdf \x00\x01\x02"


def config(server: SmtpServer, **overrides: Any) -> SmtpConfig:
    values: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": server.port,
        "security": "none",
        "user": "",
        "password": None,
        "sender": "MeterIT <alerts@meterit.test>",
        "timeout_s": 10,
        "ca_file": "",
    }
    values.update(overrides)
    return SmtpConfig(**values)


def drain_at(url: str, server: SmtpServer, now: datetime, cap: int = 20) -> drain.DrainResult:
    with psycopg.connect(url) as conn, SmtpTransport(config(server)) as transport:
        return drain.run(conn, transport, now, cap)


def enqueue(url: str, recipients: list[str], subject: str, **kwargs: Any) -> int:
    with psycopg.connect(url) as conn:
        message_id = outbox.enqueue(conn, recipients, subject, f"body of {subject}", **kwargs)
        conn.commit()
    return message_id


def statuses(url: str) -> dict[str, str]:
    with psycopg.connect(url) as conn:
        return {d.recipient + " " + d.subject: d.status for d in outbox.deliveries(conn, None)}


def test_queued_mail_reaches_the_smtp_server_with_html_and_attachments(
    central_db_url: str, smtp_server: SmtpServer
) -> None:
    enqueue(
        central_db_url,
        ["Ops@Example.com", "ops@example.com", "boss@example.com"],
        "Monthly report\r\nBcc: victim@example.com",
        html="<p>the <b>report</b></p>",
        attachments=[("report.pdf", "application/pdf", PDF), ("report.csv", "text/csv", b"a,b\n")],
        now=T0,
    )
    result = drain_at(central_db_url, smtp_server, T0)

    assert result.sent == 2  # the same address twice is one delivery
    got = sorted(smtp_server.messages, key=lambda m: m.rcpt_tos)
    assert [m.rcpt_tos for m in got] == [["boss@example.com"], ["ops@example.com"]]
    mail = got[1]
    assert mail.mail_from == "alerts@meterit.test"
    # a line break in the subject must not become a header of its own
    assert mail.subject == "Monthly report Bcc: victim@example.com"
    assert mail.message["Bcc"] is None
    assert mail.text().startswith("body of Monthly report")
    assert mail.html() is not None and "<b>report</b>" in (mail.html() or "")
    files = {a.get_filename(): a.get_content() for a in mail.message.iter_attachments()}
    assert files == {"report.pdf": PDF, "report.csv": "a,b\n"}
    assert mail.message["Message-ID"] != got[0].message["Message-ID"]
    assert set(statuses(central_db_url).values()) == {"sent"}
    # nothing is sent twice
    assert drain_at(central_db_url, smtp_server, T0 + timedelta(minutes=5)).sent == 0
    assert len(smtp_server.messages) == 2


def test_mail_waits_through_an_smtp_outage_with_the_reason_shown(
    central_db_url: str, smtp_server: SmtpServer
) -> None:
    smtp_server.stop()
    enqueue(central_db_url, ["ops@example.com"], "site down", now=T0)
    enqueue(central_db_url, ["ops@example.com"], "site up", now=T0)

    first = drain_at(central_db_url, smtp_server, T0)
    assert (first.sent, first.retrying) == (0, 1)
    with psycopg.connect(central_db_url) as conn:
        health = outbox.health(conn)
        tried = outbox.deliveries(conn, None)[-1]
    assert health.queued == 2 and health.failed == 0
    assert health.last_error and "cannot reach SMTP server 127.0.0.1" in health.last_error
    assert (tried.attempts, tried.next_attempt_at) == (1, T0 + timedelta(minutes=1))

    # more tries while it is down back off further, and nothing is dropped
    drain_at(central_db_url, smtp_server, T0 + timedelta(seconds=30))
    drain_at(central_db_url, smtp_server, T0 + timedelta(minutes=2))
    assert set(statuses(central_db_url).values()) == {"queued"}

    smtp_server.start()
    later = T0 + timedelta(minutes=10)
    assert drain_at(central_db_url, smtp_server, later).sent == 2
    assert sorted(m.subject for m in smtp_server.messages) == ["site down", "site up"]
    with psycopg.connect(central_db_url) as conn:
        assert outbox.health(conn) == outbox.Health(0, 0, None, None)


def test_refused_recipient_is_marked_failed_and_can_be_queued_again(
    central_db_url: str, smtp_server: SmtpServer
) -> None:
    smtp_server.refuse.add("gone@example.com")
    enqueue(central_db_url, ["gone@example.com", "ops@example.com"], "backlog high", now=T0)
    result = drain_at(central_db_url, smtp_server, T0)
    assert (result.sent, result.failed) == (1, 1)
    with psycopg.connect(central_db_url) as conn:
        failed = outbox.deliveries(conn, None, status="failed")
        assert outbox.health(conn).failed == 1
    assert [d.recipient for d in failed] == ["gone@example.com"]
    assert failed[0].last_error and "550" in failed[0].last_error
    # refused for good: later runs leave it alone ...
    assert drain_at(central_db_url, smtp_server, T0 + timedelta(hours=2)).failed == 0
    # ... until an operator queues it again once the mailbox exists
    smtp_server.refuse.clear()
    with psycopg.connect(central_db_url) as conn:
        assert outbox.requeue(conn, failed[0].id, None)
        assert not outbox.requeue(conn, failed[0].id, None), "only a failed one is requeued"
        conn.commit()
    assert drain_at(central_db_url, smtp_server, datetime.now(UTC)).sent == 1
    assert sorted(r for m in smtp_server.messages for r in m.rcpt_tos) == [
        "gone@example.com",
        "ops@example.com",
    ]


def test_hourly_cap_sends_the_rest_as_one_digest_and_loses_nothing(
    central_db_url: str, smtp_server: SmtpServer
) -> None:
    for n in range(10):
        files = [("n.csv", "text/csv", b"9\n")] if n == 9 else None
        enqueue(central_db_url, ["ops@example.com"], f"alert {n}", attachments=files, now=T0)
    enqueue(central_db_url, ["other@example.com"], "alert for someone else", now=T0)

    result = drain_at(central_db_url, smtp_server, T0, cap=3)
    assert (result.sent, result.digests) == (4, 1)
    to_ops = [m for m in smtp_server.messages if m.rcpt_tos == ["ops@example.com"]]
    assert [m.subject for m in to_ops[:2]] == ["alert 0", "alert 1"]
    digest = to_ops[2]
    assert digest.subject == "MeterIT digest: 8 e-mails held back by the hourly limit"
    for n in range(2, 10):
        assert f"alert {n}" in digest.text() and f"body of alert {n}" in digest.text()
    assert [a.get_filename() for a in digest.message.iter_attachments()] == ["n.csv"]
    assert len(to_ops) == 3

    # two more within the hour: no place left, so they wait (not dropped, not sent)
    enqueue(central_db_url, ["ops@example.com"], "alert 10", now=T0 + timedelta(minutes=10))
    enqueue(central_db_url, ["ops@example.com"], "alert 11", now=T0 + timedelta(minutes=10))
    waiting = drain_at(central_db_url, smtp_server, T0 + timedelta(minutes=10), cap=3)
    assert (waiting.sent, waiting.waiting) == (0, 2)
    # an hour after the first sends, the places are free again
    assert drain_at(central_db_url, smtp_server, T0 + timedelta(minutes=61), cap=3).sent == 2
    subjects = [m.subject for m in smtp_server.messages if m.rcpt_tos == ["ops@example.com"]]
    assert subjects[-2:] == ["alert 10", "alert 11"]
    counts: dict[str, int] = {}
    for status in statuses(central_db_url).values():
        counts[status] = counts.get(status, 0) + 1
    assert counts == {"sent": 6, "digested": 8}


def test_starttls_and_login_with_the_password_from_a_file(
    central_db_url: str, tmp_path: Path
) -> None:
    cert, key = self_signed(tmp_path)
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)
    server = SmtpServer(tls=tls, login=("meterit", "s3cret-pass"))
    server.start()
    try:
        secret = tmp_path / "smtp-password"
        secret.write_text("s3cret-pass\n")
        env = {
            "METERIT_CONFIG": str(tmp_path / "none.toml"),
            "METERIT_SMTP_HOST": "127.0.0.1",
            "METERIT_SMTP_PORT": str(server.port),
            "METERIT_SMTP_SECURITY": "starttls",
            "METERIT_SMTP_CA_FILE": str(cert),
            "METERIT_SMTP_USER": "meterit",
            "METERIT_SMTP_PASSWORD_FILE": str(secret),
        }
        (tmp_path / "none.toml").touch()
        settings = load_settings(env)
        enqueue(central_db_url, ["ops@example.com"], "over TLS", now=T0)
        with psycopg.connect(central_db_url) as conn:
            bad = SmtpConfig.from_settings(settings)
            with SmtpTransport(SmtpConfig(**{**bad.__dict__, "password": "wrong"})) as t:
                refused = drain.run(conn, t, T0, 20)
            assert refused.retrying == 1 and "refused the login" in refused.errors[0]
            with SmtpTransport(SmtpConfig.from_settings(settings)) as t:
                assert drain.run(conn, t, T0 + timedelta(hours=1), 20).sent == 1
        assert [m.subject for m in server.messages] == ["over TLS"]
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("recipients", "kwargs", "error"),
    [
        ([], {}, "at least one"),
        (["ops@example.com\r\nBcc: x@example.com"], {}, "expected an e-mail address"),
        (["Ops <ops@example.com>"], {}, "expected an e-mail address"),
        (["ops@example.com"], {"attachments": [("../x", "text/csv", b"")]}, "plain file name"),
        (["ops@example.com"], {"attachments": [("x", "text", b"")]}, "MIME type"),
        (
            ["ops@example.com"],
            {"attachments": [("x.bin", "application/octet-stream", bytes(21 * 1024 * 1024))]},
            "at most",
        ),
    ],
)
def test_enqueue_refuses_what_cannot_be_sent_and_writes_nothing(
    central_db_url: str, recipients: list[str], kwargs: dict[str, Any], error: str
) -> None:
    with psycopg.connect(central_db_url) as conn:
        with pytest.raises(outbox.MailError, match=error):
            outbox.enqueue(conn, recipients, "subject", "text", **kwargs)
        conn.rollback()
        assert outbox.deliveries(conn, None) == []


def test_only_one_drain_runs_at_a_time(central_db_url: str) -> None:
    with psycopg.connect(central_db_url) as first, psycopg.connect(central_db_url) as second:
        with (
            locks.held(first, locks.MAIL_DRAIN) as got_first,
            locks.held(second, locks.MAIL_DRAIN) as got_second,
        ):
            assert (got_first, got_second) == (True, False)
        with locks.held(second, locks.MAIL_DRAIN) as got_after:
            assert got_after, "released when the first run ends"


def test_the_central_worker_process_sends_queued_mail(
    central_db_url: str, redis_url: str, smtp_server: SmtpServer, tmp_path: Path
) -> None:
    enqueue(central_db_url, ["ops@example.com"], "from the worker")
    env = central_env(central_db_url, redis_url, tmp_path, **smtp_server.env())
    with run_central_worker(env) as worker:
        worker.wait_for(
            lambda: bool(smtp_server.messages),
            60,
            "the worker sent nothing within 60 s",
            poll_s=0.2,
        )
    assert [m.subject for m in smtp_server.messages] == ["from the worker"]
    assert "mail every 15 s" in worker.output
    assert set(statuses(central_db_url).values()) == {"sent"}
