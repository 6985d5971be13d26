"""Which server a report's figures are read from: the read replica
(``METERIT_READ_DATABASE_URL``) once it has replayed everything the primary had written when the
report started, else the primary.

A report is usually of a period that has ended, but its last readings may have reached the
primary only a moment ago (an appliance's backlog, the rollup of the last hour). A replica a
little behind would leave them out of the figures for good, so the report first takes the
primary's WAL position and waits, at most ``REPLAY_WAIT``, for the replica to replay up to it;
every commit acknowledged before then is in what the replica then shows. A replica further
behind (or paused, or unreachable) costs a log line, and the report reads the primary as it
would without one. Everything a report writes (its row, progress and files) goes to the
primary whichever server it reads.

A hot standby cancels a query whose snapshot or locks stand in the way of replaying the WAL
("canceling statement due to conflict with recovery", SQLSTATE 40001) once
``max_standby_streaming_delay`` has passed; a long report over rows the primary just vacuumed
meets that now and then. Such a report is read again from the primary, once, with one warning
(``read_figures``), rather than failed for a cause that is the replica's, not the report's.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

import psycopg

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Replay is usually well under a second behind; a replica this far behind has a problem the
# doctor reports, and the report does not wait on it.
REPLAY_WAIT = timedelta(seconds=10)
POLL_S = 0.05
CONNECT_TIMEOUT_S = 5

# True once the server has replayed up to the position; a server not in recovery (a replica
# promoted, or the primary itself) has everything.
REPLAYED_SQL = "SELECT coalesce(pg_last_wal_replay_lsn() >= %s::pg_lsn, NOT pg_is_in_recovery())"


def url_to_read(
    primary: psycopg.Connection[Any],
    primary_url: str,
    read_url: str | None,
    wait: timedelta = REPLAY_WAIT,
) -> str:
    """``read_url`` when it is set and has caught up with ``primary`` (a connection to the
    primary) within ``wait``, else ``primary_url``."""
    if not read_url:
        return primary_url
    with primary.transaction():
        row = primary.execute("SELECT pg_current_wal_lsn()::text").fetchone()
    assert row is not None
    target: str = row[0]
    try:
        if _replayed(read_url, target, wait):
            return read_url
        why = f"had not replayed the primary's WAL up to {target} after {wait.total_seconds():g} s"
    except psycopg.OperationalError as err:
        why = f"could not be read ({str(err).splitlines()[0][:200] if str(err) else 'no answer'})"
    logger.warning("the read replica %s: this report reads the primary", why)
    return primary_url


def _replayed(read_url: str, target: str, wait: timedelta) -> bool:
    deadline = time.monotonic() + wait.total_seconds()
    with psycopg.connect(read_url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S) as conn:
        while True:
            row = conn.execute(REPLAYED_SQL, (target,)).fetchone()
            if row is not None and row[0]:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(POLL_S)


def conflicts_with_recovery(err: BaseException) -> bool:
    """Whether ``err`` is a standby cancelling a query to go on replaying the WAL: SQLSTATE
    40001 (serialization_failure) on a connection that only reads, or the message PostgreSQL
    gives those cancellations whatever their class."""
    return isinstance(err, psycopg.Error) and (
        err.sqlstate == "40001" or "conflict with recovery" in str(err)
    )


def read_figures(read: Callable[[str], T], primary_url: str, figures_url: str) -> tuple[T, str]:
    """``read(figures_url)``, and the URL it read; when that is the replica and the replica
    cancelled the reading for a recovery conflict, ``read(primary_url)`` once instead."""
    try:
        return read(figures_url), figures_url
    except psycopg.Error as err:
        if figures_url == primary_url or not conflicts_with_recovery(err):
            raise
        first_line = str(err).splitlines()[0][:200] if str(err) else type(err).__name__
        logger.warning(
            "the read replica cancelled this report's reading (%s): it reads the primary",
            first_line,
        )
    return read(primary_url), primary_url
