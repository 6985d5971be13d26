"""The connection pool, as a Flask extension created lazily in each gunicorn worker.

The pool is opened on first use, after gunicorn has forked, because a connection inherited
across a fork is shared by two processes and corrupts both. Every connection runs in UTC (so
``date_trunc('hour', ts)`` means the same hour everywhere) and owns a temporary staging table
that ingest COPYs into; ``ON COMMIT DELETE ROWS`` empties it without catalog churn per batch.
"""

from __future__ import annotations

import threading
from typing import Any

import psycopg
from flask import Flask, current_app
from psycopg_pool import ConnectionPool

EXTENSION = "meterit_db"

STAGING_DDL = """CREATE TEMP TABLE IF NOT EXISTS ingest_staging (
    point_id integer NOT NULL, ts timestamptz NOT NULL, value double precision NOT NULL
) ON COMMIT DELETE ROWS"""


def _configure(conn: psycopg.Connection[Any]) -> None:
    conn.autocommit = True
    conn.execute("SET TIME ZONE 'UTC'")
    conn.execute("SET application_name = 'meterit-central'")
    conn.execute(STAGING_DDL)
    conn.autocommit = False


class Database:
    def __init__(self, app: Flask | None = None) -> None:
        self._lock = threading.Lock()
        self._pool: ConnectionPool[psycopg.Connection[Any]] | None = None
        self.url = ""
        self.max_size = 4
        if app is not None:
            self.init_app(app)

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
                        kwargs={"connect_timeout": 5},
                        configure=_configure,
                        # a connection killed by a PostgreSQL restart is found at checkout and
                        # replaced, instead of hanging the request that draws it
                        check=ConnectionPool.check_connection,
                        timeout=10,
                        open=True,
                        name="meterit-central",
                    )
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None


def get_db() -> Database:
    db: Database = current_app.extensions[EXTENSION]
    return db


def pool() -> ConnectionPool[psycopg.Connection[Any]]:
    return get_db().pool
