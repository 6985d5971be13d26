"""A report's independent aggregates (this period, the previous one, completeness) run at once,
each on its own connection, all reading the same snapshot of the database.

Each aggregate is long statements on one PostgreSQL backend, so running them one after another
leaves the other cores idle; side by side they take about as long as the longest. The
connections import the snapshot a first one exported (``pg_export_snapshot``), so a reading
committed while the report runs is in all of its figures or in none. The connections only read
(their SQL needs no temporary tables), so they may be a hot standby's: PostgreSQL exports and
imports snapshots during recovery too (``central.reports.source`` chooses the server).

Without a way to connect (``connect=None``: the tests' single connection) the work runs in
order on the given connection, as it always did.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, TypeVar

import psycopg
from psycopg import sql

T = TypeVar("T")
Connect = Callable[[], psycopg.Connection[Any]]


class Runner:
    """Runs pieces of work, each given a connection; ``submit`` returns a future."""

    def __init__(
        self,
        conn: psycopg.Connection[Any],
        pool: ThreadPoolExecutor | None = None,
        connect: Connect | None = None,
        snapshot: str = "",
    ) -> None:
        self._conn = conn
        self._pool = pool
        self._connect = connect
        self._snapshot = snapshot

    def submit(self, work: Callable[[psycopg.Connection[Any]], T]) -> Future[T]:
        if self._pool is None:
            done: Future[T] = Future()
            done.set_result(work(self._conn))
            return done
        return self._pool.submit(self._on_own_connection, work)

    def _on_own_connection(self, work: Callable[[psycopg.Connection[Any]], T]) -> T:
        assert self._connect is not None
        with self._connect() as conn:
            _reading(conn)
            conn.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(self._snapshot))
            out = work(conn)
            conn.rollback()  # nothing to keep: the work only read
        return out


def _reading(conn: psycopg.Connection[Any]) -> None:
    """The next transaction reads one consistent snapshot and cannot write."""
    conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
    conn.read_only = True


@contextmanager
def runner(conn: psycopg.Connection[Any], connect: Connect | None, width: int) -> Iterator[Runner]:
    """Up to ``width`` pieces of work at once on connections from ``connect`` sharing one
    snapshot, or one after another on ``conn`` when ``connect`` is None."""
    if connect is None:
        yield Runner(conn)
        return
    # the lead connection's open transaction keeps the exported snapshot importable
    with connect() as lead, ThreadPoolExecutor(width, thread_name_prefix="report-sql") as pool:
        _reading(lead)
        row = lead.execute("SELECT pg_export_snapshot()").fetchone()
        assert row is not None
        yield Runner(conn, pool, connect, row[0])  # leaving waits for every piece
