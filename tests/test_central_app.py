"""``central.app.create_app(test_config)`` builds from what it is given, never the environment.

A factory that quietly merged the environment in would let a developer's METERIT_* variables
(or the test machine's) decide what a test talks to; a served app, on the other hand, must read
them. Flask's test client drives the app in-process here because the question is the factory's,
not the server's; every request goes to the real PostgreSQL and Redis.
"""

from __future__ import annotations

import pytest

from central.app import create_app
from central.settings import CentralSettings, load_settings
from common.config import ConfigError

# what the environment says; a test_config-built app must not see any of it
HOSTILE_ENV = {
    "METERIT_DATABASE_URL": "postgresql://nowhere.invalid/meterit",
    "METERIT_REDIS_URL": "redis://nowhere.invalid:6379/0",
    "METERIT_HEARTBEAT_LATE_S": "31",
}


def test_the_app_is_built_from_test_config_only(
    monkeypatch: pytest.MonkeyPatch, central_db_url: str, redis_url: str
) -> None:
    for name, value in HOSTILE_ENV.items():
        monkeypatch.setenv(name, value)
    settings = CentralSettings(
        database_url=central_db_url, redis_url=redis_url, heartbeat_late_s=120
    )

    app = create_app({"CENTRAL_SETTINGS": settings, "TESTING": True, "RATE_LIMIT": "7/minute"})

    assert app.config["DATABASE_URL"] == central_db_url
    assert app.config["REDIS_URL"] == redis_url
    assert app.config["HEARTBEAT_LATE_S"] == 120
    assert app.config["RATE_LIMIT"] == "7/minute"  # a Flask key of test_config wins
    health = app.test_client().get("/health")
    assert health.status_code == 200, health.json
    assert health.json == {"status": "ok", "checks": {"database": "ok", "redis": "ok"}}


def test_without_settings_test_config_starts_from_the_defaults(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in HOSTILE_ENV.items():
        monkeypatch.setenv(name, value)
    app = create_app({"TESTING": True})
    assert app.config["DATABASE_URL"] == CentralSettings().database_url
    assert app.config["HEARTBEAT_LATE_S"] == CentralSettings().heartbeat_late_s


def test_two_apps_in_one_process_keep_their_own_database(
    central_db_url: str, pg_admin_url: str, redis_url: str
) -> None:
    first = create_app(
        {"CENTRAL_SETTINGS": CentralSettings(database_url=central_db_url, redis_url=redis_url)}
    )
    second = create_app(
        {"CENTRAL_SETTINGS": CentralSettings(database_url=pg_admin_url, redis_url=redis_url)}
    )
    for app, url in ((first, central_db_url), (second, pg_admin_url)):
        with app.app_context():
            from central.database import pool

            with pool().connection() as conn:
                row = conn.execute("SELECT current_database()").fetchone()
            assert row is not None
            assert row[0] == url.rsplit("/", 1)[1].split("?")[0]
            pool().close()


def test_served_the_app_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("METERIT_HEARTBEAT_LATE_S", "not-a-number")
    with pytest.raises(ConfigError, match="HEARTBEAT_LATE_S"):
        create_app()


def test_the_sync_request_limit_is_checked_when_central_starts() -> None:
    """central.sync_budget parses it on every sync request: a typo must stop the start, not
    answer 500 to every appliance."""
    assert load_settings({"METERIT_RATE_LIMIT": "3/minute;100/hour"}).rate_limit
    with pytest.raises(ConfigError, match="METERIT_RATE_LIMIT='lots'"):
        load_settings({"METERIT_RATE_LIMIT": "lots"})
