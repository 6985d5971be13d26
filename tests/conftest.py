"""Fixtures: a fresh PostgreSQL database per test with the schema applied, and a clean Redis."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from tests import harness

# fixtures every test module may use by parameter name, without importing them
pytest_plugins = [
    "tests.central_fixtures",
    "tests.private_redis",
    "tests.smtp_capture",
    "tests.sync_helpers",
    "tests.ui_browser",
    "tests.web_fixtures",
]


@pytest.fixture(scope="session")
def pg_admin_url() -> Iterator[str]:
    url = harness.admin_postgres_url()
    yield url
    harness.stop_embedded()


def _template(admin_url: str, migrations, label: str) -> Iterator[str]:
    name = harness.migrated_template(admin_url, migrations, label)
    yield name
    harness.drop_database(admin_url, name)


@pytest.fixture(scope="session")
def edge_template(pg_admin_url: str) -> Iterator[str]:
    yield from _template(pg_admin_url, harness.EDGE_MIGRATIONS, "edge")


@pytest.fixture(scope="session")
def central_template(pg_admin_url: str) -> Iterator[str]:
    yield from _template(pg_admin_url, harness.CENTRAL_MIGRATIONS, "central")


@pytest.fixture
def empty_db_url(pg_admin_url: str) -> Iterator[str]:
    with harness.fresh_database(pg_admin_url) as url:
        yield url


@pytest.fixture
def edge_db_url(pg_admin_url: str, edge_template: str) -> Iterator[str]:
    """A new edge database with the schema applied."""
    with harness.fresh_database(pg_admin_url, edge_template) as url:
        yield url


@pytest.fixture
def central_db_url(pg_admin_url: str, central_template: str) -> Iterator[str]:
    """A new central database with the schema applied."""
    with harness.fresh_database(pg_admin_url, central_template) as url:
        yield url


@pytest.fixture(scope="session")
def redis_server_url(pg_admin_url: str) -> str:
    # depends on pg_admin_url only so embedded servers are stopped together at session end
    return harness.redis_server_url()


@pytest.fixture
def redis_url(redis_server_url: str) -> Iterator[str]:
    """A Redis database emptied before the test."""
    client = redis.Redis.from_url(redis_server_url)
    client.flushdb()
    client.close()
    yield redis_server_url
