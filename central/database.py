"""Central's connection pools (see ``common.pool``). Every connection runs in UTC (so
``date_trunc('hour', ts)`` means the same hour everywhere). A primary connection owns a
temporary staging table that ingest COPYs into; ``ON COMMIT DELETE ROWS`` empties it without
catalog churn per batch.

Pages and tools that only read figures take ``read_pool()``: a streaming replica when
``METERIT_READ_DATABASE_URL`` names one, else the primary. A replica lags by its replay delay
(usually well under a second), so nothing that must see its own request's write reads there, and
it cannot hold temporary tables: what runs on it is plain SELECTs (docs/scaling.md).

A sync API request takes ``request_connection()``: one checkout for its whole life
(authentication with a batch's replay probe, the write and its answer), in autocommit so that
a lone SELECT costs one round trip rather than BEGIN, SELECT and COMMIT. Its writes run in
explicit transaction blocks. The connection goes back to the pool (autocommit off again) when
the request ends.
"""

from __future__ import annotations

from typing import Any

import psycopg
from flask import Flask, current_app, g
from psycopg.pq import TransactionStatus
from psycopg_pool import ConnectionPool

from common.pool import CheckoutCheck, LazyPool

EXTENSION = "meterit_db"
READ_EXTENSION = "meterit_db_read"

STAGING_DDL = """CREATE TEMP TABLE IF NOT EXISTS ingest_staging (
    point_id integer NOT NULL, ts timestamptz NOT NULL, value double precision NOT NULL
) ON COMMIT DELETE ROWS"""


def _configure(conn: psycopg.Connection[Any]) -> None:
    conn.autocommit = True
    conn.execute("SET TIME ZONE 'UTC'")
    conn.execute(STAGING_DDL)
    conn.autocommit = False


def _configure_reader(conn: psycopg.Connection[Any]) -> None:
    conn.autocommit = True
    conn.execute("SET TIME ZONE 'UTC'")
    # a write through the read pool is a bug: fail it at once, even before a replica exists
    conn.execute("SET default_transaction_read_only = on")
    conn.autocommit = False


def new_pool() -> LazyPool:
    return LazyPool("meterit-central", EXTENSION, _configure)


def new_read_pool() -> LazyPool:
    return LazyPool("meterit-central-read", READ_EXTENSION, _configure_reader, "READ_DATABASE_URL")


def get_db() -> LazyPool:
    db: LazyPool = current_app.extensions[EXTENSION]
    return db


def pool() -> ConnectionPool[psycopg.Connection[Any]]:
    return get_db().pool


def read_pool() -> ConnectionPool[psycopg.Connection[Any]]:
    """The replica's pool when one is configured, else the primary's."""
    reader: LazyPool | None = current_app.extensions.get(READ_EXTENSION)
    return reader.pool if reader is not None else pool()


def request_connection() -> psycopg.Connection[Any]:
    """This request's connection from the primary's pool, in autocommit (see the module doc)."""
    conn: psycopg.Connection[Any] | None = g.get("db_conn")
    if conn is None:
        conn = pool().getconn()
        g.db_conn = conn
        conn.autocommit = True
    return conn


def _return_request_connection(_error: BaseException | None) -> None:
    conn: psycopg.Connection[Any] | None = g.pop("db_conn", None)
    if conn is None:
        return
    try:
        if conn.info.transaction_status != TransactionStatus.IDLE:
            conn.rollback()
        conn.autocommit = False
    except psycopg.Error:
        pass  # a broken connection: the pool discards it
    finally:
        if conn.autocommit:
            conn.close()  # never hand an autocommit connection to a ``pool().connection()`` user
        pool().putconn(conn)


def init_request_connections(app: Flask) -> None:
    app.teardown_request(_return_request_connection)


def standalone_pool(
    url: str, name: str, max_size: int, *, read_only: bool = False
) -> ConnectionPool[psycopg.Connection[Any]]:
    """A pool configured like the app's, for a daemon without Flask (the MCP server);
    ``read_only`` for a replica's."""
    return ConnectionPool(
        url,
        min_size=1,
        max_size=max_size,
        kwargs={"connect_timeout": 5, "application_name": name},
        configure=_configure_reader if read_only else _configure,
        check=CheckoutCheck(),
        timeout=10,
        open=False,
        name=name,
    )
