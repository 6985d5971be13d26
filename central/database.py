"""Central's connection pool (see ``common.pool``). Every connection runs in UTC (so
``date_trunc('hour', ts)`` means the same hour everywhere) and owns a temporary staging table
that ingest COPYs into; ``ON COMMIT DELETE ROWS`` empties it without catalog churn per batch.
"""

from __future__ import annotations

from typing import Any

import psycopg
from flask import current_app
from psycopg_pool import ConnectionPool

from common.pool import LazyPool

EXTENSION = "meterit_db"

STAGING_DDL = """CREATE TEMP TABLE IF NOT EXISTS ingest_staging (
    point_id integer NOT NULL, ts timestamptz NOT NULL, value double precision NOT NULL
) ON COMMIT DELETE ROWS"""


def _configure(conn: psycopg.Connection[Any]) -> None:
    conn.autocommit = True
    conn.execute("SET TIME ZONE 'UTC'")
    conn.execute(STAGING_DDL)
    conn.autocommit = False


def new_pool() -> LazyPool:
    return LazyPool("meterit-central", EXTENSION, _configure)


def get_db() -> LazyPool:
    db: LazyPool = current_app.extensions[EXTENSION]
    return db


def pool() -> ConnectionPool[psycopg.Connection[Any]]:
    return get_db().pool


def standalone_pool(url: str, name: str, max_size: int) -> ConnectionPool[psycopg.Connection[Any]]:
    """A pool configured like the app's, for a daemon without Flask (the MCP server)."""
    return ConnectionPool(
        url,
        min_size=1,
        max_size=max_size,
        kwargs={"connect_timeout": 5, "application_name": name},
        configure=_configure,
        check=ConnectionPool.check_connection,
        timeout=10,
        open=False,
        name=name,
    )
