"""A psycopg connection pool as a Flask extension, opened lazily in each gunicorn worker.

The pool is opened on first use, after gunicorn has forked, because a connection inherited
across a fork is shared by two processes and corrupts both. Connections are checked at
checkout, so one killed by a PostgreSQL restart is replaced instead of hanging a request.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import psycopg
from flask import Flask
from psycopg_pool import ConnectionPool

Configure = Callable[[psycopg.Connection[Any]], None]


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
                        check=ConnectionPool.check_connection,
                        timeout=10,
                        open=True,
                        name=self.name,
                    )
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None
