"""A small per-worker connection pool for the UI's own reads (latest values, charts).

Opened on first use, after gunicorn has forked: a connection inherited across a fork would be
shared by two processes. ``appliance.sync.status`` keeps opening its own connections; this pool
serves the reads that run on every dashboard refresh.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from flask import Flask, current_app
from psycopg_pool import ConnectionPool

EXTENSION = "meterit_web_db"


def _configure(conn: psycopg.Connection[Any]) -> None:
    conn.autocommit = True
    conn.execute("SET TIME ZONE 'UTC'")
    # a chart query must never hold up the collector for long; the UI shows the error instead
    conn.execute("SET statement_timeout = '10s'")


class Database:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pool: ConnectionPool[psycopg.Connection[Any]] | None = None
        self.url = ""
        self.max_size = 4

    def init_app(self, app: Flask) -> None:
        self.url = app.config["DATABASE_URL"]
        self.max_size = int(app.config.get("DB_POOL_SIZE", 4))
        app.extensions[EXTENSION] = self

    @property
    def pool(self) -> ConnectionPool[psycopg.Connection[Any]]:
        if self._pool is None:
            with self._lock:
                if self._pool is None:
                    self._pool = ConnectionPool(
                        self.url,
                        min_size=1,
                        max_size=self.max_size,
                        kwargs={"connect_timeout": 5, "application_name": "meterit-web"},
                        configure=_configure,
                        timeout=10,
                        open=True,
                        name="meterit-web",
                    )
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None


@contextmanager
def connection() -> Iterator[psycopg.Connection[Any]]:
    db: Database = current_app.extensions[EXTENSION]
    with db.pool.connection() as conn:
        yield conn
