"""A psycopg connection pool as a Flask extension, opened lazily in each gunicorn worker.

The pool is opened on first use, after gunicorn has forked, because a connection inherited
across a fork is shared by two processes and corrupts both. Connections are checked at
checkout (``CheckoutCheck``), so one killed by a PostgreSQL restart is replaced instead of
failing a request.
"""

from __future__ import annotations

import select
import threading
import time
from collections.abc import Callable
from typing import Any
from weakref import WeakKeyDictionary

import psycopg
from flask import Flask
from psycopg_pool import ConnectionPool

Configure = Callable[[psycopg.Connection[Any]], None]

# a connection idle longer than this gets the full check (a round trip) at checkout
IDLE_CHECK_S = 30.0


class CheckoutCheck:
    """The pool's checkout check (``check=``), without a round trip for a connection that was
    in use a moment ago.

    psycopg_pool's ``check_connection`` sends an empty query at every checkout: one round trip
    per checkout, the price of a sync request's whole authentication. Here the round trip is
    made only when it can tell something: the connection is new to this check, was last checked
    out more than ``idle_s`` ago (so a connection idle that long is always queried), or its
    socket is readable. An idle connection has nothing to read unless the server spoke: a
    restart or ``pg_terminate_backend`` sends its FATAL message and closes the socket, so a
    killed connection is still found (and replaced) before a caller gets it. A connection lost
    without a word (a dropped network path) within ``idle_s`` fails its caller instead, as the
    empty query would have. (Not psycopg_pool's ``reset=`` hook to note the return time: with
    one, every return is handed to a pool worker thread.)
    """

    def __init__(
        self,
        idle_s: float = IDLE_CHECK_S,
        clock: Callable[[], float] = time.monotonic,
        full: Configure = ConnectionPool.check_connection,
    ) -> None:
        self.idle_s = idle_s
        self._clock = clock
        self._full = full
        self._seen: WeakKeyDictionary[psycopg.Connection[Any], float] = WeakKeyDictionary()

    def __call__(self, conn: psycopg.Connection[Any]) -> None:
        now = self._clock()
        last = self._seen.get(conn)
        self._seen[conn] = now
        if last is None or now - last > self.idle_s or server_spoke(conn):
            self._full(conn)


def server_spoke(conn: psycopg.Connection[Any]) -> bool:
    """Whether an idle connection's socket has something to read (or is closed)."""
    if conn.closed:
        return True
    poller = select.poll()  # not select(): a busy process may hold descriptors above 1024
    poller.register(conn.fileno(), select.POLLIN)
    return bool(poller.poll(0))


class LazyPool:
    def __init__(
        self, name: str, extension: str, configure: Configure, url_key: str = "DATABASE_URL"
    ) -> None:
        self.name = name
        self.url_key = url_key
        self.extension = extension
        self.configure = configure
        self._lock = threading.Lock()
        self._pool: ConnectionPool[psycopg.Connection[Any]] | None = None
        self.url = ""
        self.max_size = 4

    def init_app(self, app: Flask) -> None:
        self.url = app.config[self.url_key]
        self.max_size = int(app.config.get("DB_POOL_SIZE", 4))
        app.extensions[self.extension] = self

    @property
    def pool(self) -> ConnectionPool[psycopg.Connection[Any]]:
        if self._pool is None:
            with self._lock:
                if self._pool is None:
                    self._pool = ConnectionPool(
                        self.url,
                        min_size=1,
                        max_size=self.max_size,
                        kwargs={"connect_timeout": 5, "application_name": self.name},
                        configure=self.configure,
                        check=CheckoutCheck(),
                        timeout=10,
                        open=True,
                        name=self.name,
                    )
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None
