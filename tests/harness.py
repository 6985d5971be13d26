"""Where the tests (and benchmarks) get PostgreSQL and Redis from.

In order: URLs from the environment (METERIT_TEST_DATABASE_URL, an admin URL able to create
databases, and METERIT_TEST_REDIS_URL); the local services on their default ports; otherwise
embedded servers started for the run. METERIT_TEST_EMBEDDED=1 forces the embedded ones.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg

from common import db
from common.embedded import EmbeddedPostgres, EmbeddedRedis, reachable

ROOT = Path(__file__).resolve().parent.parent
EDGE_MIGRATIONS = ROOT / "appliance" / "migrations"
CENTRAL_MIGRATIONS = ROOT / "central" / "migrations"
LOCAL_PG = "postgresql://postgres@127.0.0.1:5432/postgres"
LOCAL_REDIS = "redis://127.0.0.1:6379/15"  # a database of its own, never the demo's

_embedded: list[Any] = []


def _forced_embedded() -> bool:
    return os.environ.get("METERIT_TEST_EMBEDDED", "") not in ("", "0")


def admin_postgres_url() -> str:
    url = os.environ.get("METERIT_TEST_DATABASE_URL")
    if url:
        return url
    if not _forced_embedded() and reachable("127.0.0.1", 5432):
        return LOCAL_PG
    server = EmbeddedPostgres(Path(tempfile.mkdtemp(prefix="meterit-test-pg-")))
    _embedded.append(server)
    return server.url


def redis_server_url() -> str:
    url = os.environ.get("METERIT_TEST_REDIS_URL")
    if url:
        return url
    if not _forced_embedded() and reachable("127.0.0.1", 6379):
        return LOCAL_REDIS
    server = EmbeddedRedis(Path(tempfile.mkdtemp(prefix="meterit-test-redis-")))
    _embedded.append(server)
    return server.url


def stop_embedded() -> None:
    while _embedded:
        _embedded.pop().stop()


def with_database(url: str, dbname: str) -> str:
    """The same server URL pointing at another database (the path holds the name)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + dbname))


def create_database(admin_url: str, template: str | None = None, prefix: str = "meterit_t") -> str:
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        if template:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        else:
            conn.execute(f'CREATE DATABASE "{name}"')
    return name


def drop_database(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def fresh_database(admin_url: str, template: str | None = None) -> Iterator[str]:
    """A new database for one test, dropped afterwards; yields its URL."""
    name = create_database(admin_url, template)
    try:
        yield with_database(admin_url, name)
    finally:
        drop_database(admin_url, name)


def migrated_template(admin_url: str, migrations: Path, label: str) -> str:
    """A database with the schema applied, to clone per test (cloning beats migrating each time)."""
    name = create_database(admin_url, prefix=f"meterit_tpl_{label}")
    db.migrate(with_database(admin_url, name), migrations)
    return name


def scalar(conn: psycopg.Connection[Any], sql: str, params: Any = ()) -> Any:
    """The first column of the first row; fails loudly when the query returned nothing."""
    row = conn.execute(sql, params).fetchone()
    assert row is not None, f"no row from {sql}"
    return row[0]
