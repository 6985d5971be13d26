"""Log records reach journald with their structured fields, or stdout with a level prefix."""

from __future__ import annotations

import logging
import socket
from pathlib import Path

import pytest

from common import logs
from tests.journal_capture import parse_journal


def test_journal_handler_sends_structured_fields(tmp_path: Path) -> None:
    path = str(tmp_path / "journal.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(path)
    handler = logs.JournalHandler("meterit-collector", socket_path=path)
    logger = logging.getLogger("test.journal")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        logger.warning(
            "meter %s unreachable: %s", 7, "timeout", extra=logs.fields(meter_id=7, site_id=2)
        )
        entry = parse_journal(server.recv(65536))
        try:
            raise RuntimeError("boom\nsecond line")
        except RuntimeError:
            logger.exception("batch failed", extra=logs.fields(batch_id="b-1"))
        failed = parse_journal(server.recv(65536))
    finally:
        logger.removeHandler(handler)
        handler.close()
        server.close()
    assert entry["MESSAGE"] == "meter 7 unreachable: timeout"
    assert entry["PRIORITY"] == "4"
    assert entry["METER_ID"] == "7"
    assert entry["SITE_ID"] == "2"
    assert entry["SYSLOG_IDENTIFIER"] == "meterit-collector"
    assert "BATCH_ID" not in entry
    assert failed["BATCH_ID"] == "b-1"
    assert failed["PRIORITY"] == "3"
    assert "RuntimeError: boom\nsecond line" in failed["MESSAGE"]


def test_prefix_formatter_gives_journald_level_and_fields() -> None:
    record = logging.LogRecord(
        "meterit.x", logging.ERROR, __file__, 1, "upload failed: %s", ("refused",), None
    )
    record.batch_id = "abc"
    assert (
        logs.PrefixFormatter().format(record) == "<3>meterit.x: upload failed: refused BATCH_ID=abc"
    )


def test_unknown_structured_field_is_refused() -> None:
    with pytest.raises(ValueError, match="meter"):
        logs.fields(meter=1)


def test_setup_under_systemd_without_socket_uses_prefixed_stdout(monkeypatch, capsys) -> None:
    monkeypatch.setenv("JOURNAL_STREAM", "8:1234")
    monkeypatch.setattr(logs, "JOURNAL_SOCKET", "/nonexistent/socket")
    logs.setup_logging("meterit-test")
    logging.getLogger("meterit.t").info("hello %s", "there", extra=logs.fields(site_id=3))
    assert "<6>meterit.t: hello there SITE_ID=3" in capsys.readouterr().out
