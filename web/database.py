"""A small per-worker connection pool for the UI's own reads (latest values, charts).

See ``common.pool``. It serves the reads that run on every dashboard refresh, the meter status
from ``appliance.service`` among them; the service's other reads open their own connections.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from flask import current_app

from common.pool import LazyPool

EXTENSION = "meterit_web_db"


def _configure(conn: psycopg.Connection[Any]) -> None:
    conn.autocommit = True
    conn.execute("SET TIME ZONE 'UTC'")
    # a chart query must never hold up the collector for long; the UI shows the error instead
    conn.execute("SET statement_timeout = '10s'")


def new_pool() -> LazyPool:
    return LazyPool("meterit-web", EXTENSION, _configure)


@contextmanager
def connection() -> Iterator[psycopg.Connection[Any]]:
    db: LazyPool = current_app.extensions[EXTENSION]
    with db.pool.connection() as conn:
        yield conn
