"""One logging setup for every daemon.

Under systemd (``JOURNAL_STREAM`` set) records go to journald through its native protocol, so
structured fields such as METER_ID, SITE_ID, BATCH_ID and FAILURE (a failure mode, see
:mod:`common.failures`) are searchable (``journalctl -u meterit-collector METER_ID=12``). Without
the journal socket they go to stdout with the ``<N>`` syslog level prefix journald understands; on
a terminal, in a readable form.

Callers attach fields with ``extra=fields(meter_id=..)``.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import traceback
from typing import Any

JOURNAL_SOCKET = "/run/systemd/journal/socket"
STRUCTURED_FIELDS = ("meter_id", "site_id", "batch_id", "failure")

# syslog priorities, as journald and the "<N>" stdout prefix expect them
_PRIORITY = {
    logging.CRITICAL: 2,
    logging.ERROR: 3,
    logging.WARNING: 4,
    logging.INFO: 6,
    logging.DEBUG: 7,
}


def priority(levelno: int) -> int:
    for level, prio in sorted(_PRIORITY.items(), reverse=True):
        if levelno >= level:
            return prio
    return 7


def fields(**values: Any) -> dict[str, Any]:
    """``extra=`` for a log call; only the known structured fields are accepted."""
    unknown = set(values) - set(STRUCTURED_FIELDS)
    if unknown:
        raise ValueError(f"unknown structured log field(s): {', '.join(sorted(unknown))}")
    return values


def _structured(record: logging.LogRecord) -> dict[str, str]:
    return {
        name.upper(): str(getattr(record, name))
        for name in STRUCTURED_FIELDS
        if getattr(record, name, None) is not None
    }


class JournalHandler(logging.Handler):
    """Writes records to journald's native socket (a datagram of ``KEY=value`` lines)."""

    def __init__(self, identifier: str, socket_path: str = JOURNAL_SOCKET) -> None:
        super().__init__()
        self.identifier = identifier
        self.socket_path = socket_path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
            if record.exc_info:
                message += "\n" + "".join(traceback.format_exception(*record.exc_info))
            entries = {
                "MESSAGE": message,
                "PRIORITY": str(priority(record.levelno)),
                "SYSLOG_IDENTIFIER": self.identifier,
                "LOGGER": record.name,
                "CODE_FILE": record.pathname,
                "CODE_LINE": str(record.lineno),
                "CODE_FUNC": record.funcName,
                **_structured(record),
            }
            self.sock.sendto(_encode_journal(entries), self.socket_path)
        except Exception:
            self.handleError(record)

    def close(self) -> None:
        self.sock.close()
        super().close()


def _encode_journal(entries: dict[str, str]) -> bytes:
    out = bytearray()
    for key, value in entries.items():
        data = value.encode("utf-8", "replace")[:48_000]  # stay well inside one datagram
        if b"\n" in data:
            # multi-line values use the length-prefixed binary form of the protocol
            out += key.encode() + b"\n" + len(data).to_bytes(8, "little") + data + b"\n"
        else:
            out += key.encode() + b"=" + data + b"\n"
    return bytes(out)


class PrefixFormatter(logging.Formatter):
    """``<6>logger: message METER_ID=3`` — journald reads the level from the prefix."""

    def format(self, record: logging.LogRecord) -> str:
        text = f"<{priority(record.levelno)}>{record.name}: {record.getMessage()}"
        extra = " ".join(f"{k}={v}" for k, v in _structured(record).items())
        if extra:
            text += " " + extra
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info).replace("\n", "\n ")
        return text


class ConsoleFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        extra = " ".join(f"{k}={v}" for k, v in _structured(record).items())
        return f"{text} [{extra}]" if extra else text


def setup_logging(identifier: str, level: str = "info") -> None:
    """Configure the root logger for a daemon named ``identifier`` (e.g. meterit-collector)."""
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
        old.close()
    handler: logging.Handler
    under_systemd = "JOURNAL_STREAM" in os.environ or "INVOCATION_ID" in os.environ
    if under_systemd and os.path.exists(JOURNAL_SOCKET):
        handler = JournalHandler(identifier)
    else:
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(PrefixFormatter() if under_systemd else ConsoleFormatter())
    root.addHandler(handler)
    root.setLevel(level.upper())
    # libraries that chatter at INFO (RQ logs three lines per job); their warnings still come through
    for noisy in ("bacpypes3", "BAC0", "urllib3", "BAC0_Root", "yoyo", "rq.worker", "rq.cron"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
