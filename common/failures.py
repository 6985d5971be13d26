"""The failure modes the daemons report to the journal, each named once with its fix, and the
rule that an outage is two lines — one when it starts, one when it ends — never one per retry.

Every line carries ``FAILURE=<mode>`` (``journalctl -u 'meterit-*' FAILURE=disk-full``); the
failing line is a warning or an error and ends with what to do, the recovery line is info.
An outage of a day polled every second is still two lines.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Hashable
from typing import Any

import psycopg

from common.logs import fields


@dataclasses.dataclass(frozen=True, slots=True)
class Mode:
    """A failure mode; the sync modes (:mod:`appliance.sync.failures`) are of this kind too."""

    name: str  # the FAILURE= field
    what: str  # what broke, as the line starts (a stored error starting so names its mode)
    fix: str  # what to do, as the line ends
    back: str  # the recovery line's start
    level: int = logging.ERROR


METER_UNREACHABLE = Mode(
    "meter-unreachable",
    "meter unreachable",
    "check it is powered, its address, and that UDP 47808 reaches it; "
    "'meterit-appliance discover --address IP' asks it directly",
    "meter answers again",
    logging.WARNING,
)
EDGE_DATABASE_DOWN = Mode(
    "edge-database-down",
    "edge database unreachable",
    "check that PostgreSQL runs ('systemctl status postgresql') and METERIT_DATABASE_URL",
    "edge database answers again",
)
DISK_FULL = Mode(
    "disk-full",
    "disk full",
    "free space on the disk holding PostgreSQL's data directory; "
    "'meterit-appliance doctor' shows what is left",
    "disk has room again",
)
REDIS_DOWN = Mode(
    "redis-down",
    "Redis unreachable",
    "check that redis-server runs ('systemctl status redis-server') and METERIT_REDIS_URL",
    "Redis answers again",
)

# SQLSTATE 53100 (disk_full); a failed write may also surface as an I/O error naming ENOSPC
_DISK_FULL_TEXT = "No space left on device"


def database_mode(err: psycopg.Error) -> Mode:
    """Which mode a PostgreSQL error is: the disk full, or the database away."""
    if isinstance(err, psycopg.errors.DiskFull) or _DISK_FULL_TEXT in str(err):
        return DISK_FULL
    return EDGE_DATABASE_DOWN


def first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


class Outages:
    """The modes failing now, per subject (a meter, or None for the daemon as a whole); thread
    safe, as a worker's cron thread and its work loop report the same Redis."""

    def __init__(self, logger: logging.Logger, clock: Callable[[], float] = time.monotonic) -> None:
        self.logger = logger
        self.clock = clock
        self._since: dict[tuple[Mode, Hashable], float] = {}
        self._lock = threading.Lock()

    def active(self, mode: Mode, subject: Hashable = None) -> bool:
        with self._lock:
            return (mode, subject) in self._since

    def failing(self, mode: Mode, detail: str, consequence: str = "", **log_fields: Any) -> bool:
        """Logs ``what: detail; consequence — fix`` when ``mode`` starts failing (for the
        subject ``meter_id`` when given); True when it logged."""
        key = (mode, log_fields.get("meter_id"))
        with self._lock:
            if key in self._since:
                return False
            self._since[key] = self.clock()
        text = f"{mode.what}: {detail}"
        if consequence:
            text += f"; {consequence}"
        self.logger.log(
            mode.level, "%s — %s", text, mode.fix, extra=fields(failure=mode.name, **log_fields)
        )
        return True

    def recovered(self, mode: Mode, note: str = "", **log_fields: Any) -> bool:
        """Logs ``back after N s; note`` when ``mode`` was failing; True when it logged."""
        key = (mode, log_fields.get("meter_id"))
        with self._lock:
            since = self._since.pop(key, None)
        if since is None:
            return False
        text = f"{mode.back} after {self.clock() - since:.0f} s"
        if note:
            text += f"; {note}"
        self.logger.info("%s", text, extra=fields(failure=mode.name, **log_fields))
        return True
