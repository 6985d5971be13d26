"""Read-replica routing against a real streaming replica: a private primary and a hot standby
made by ``pg_basebackup -R`` on this machine. With the standby's replay paused, a reading
written to the primary is invisible to what reads the replica, which shows exactly which pages,
API calls and MCP tools read there; writes and what must see them stay on the primary. Reports
read the replica too, once it has replayed what the primary had when they started: the servers'
own table statistics show which one a report's figures scanned."""

from __future__ import annotations

import asyncio
import csv
import io
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
import requests

from central.app import create_app
from central.database import EXTENSION, READ_EXTENSION, pool, read_pool
from central.reports import runner, service
from central.settings import CentralSettings
from tests import harness, report_data
from tests.alert_helpers import ADMIN
from tests.central_fixtures import CentralServer
from tests.central_mcp_helpers import (
    DAYS,
    START,
    HttpServer,
    Seeded,
    central_env,
    seed,
)
from tests.cli_run import doctor, line
from tests.mcp_helpers import http_mcp, ok
from tests.ports import free_tcp_port
from tests.private_postgres import PrivateCluster, caught_up
from tests.ui_session import signed_in

PASSWORD = "password-1"
LATER = START + timedelta(days=DAYS + 1)  # after every seeded reading
NEW_READINGS = 5


@dataclass
class Replicated:
    primary: PrivateCluster
    standby: PrivateCluster
    template: str  # the migrated schema, for a test that needs a database of its own
    database: str
    seeded: Seeded

    @property
    def primary_url(self) -> str:
        return self.primary.url(self.database)

    @property
    def standby_url(self) -> str:
        return self.standby.url(self.database)


@pytest.fixture(scope="module")
def replicated() -> Iterator[Replicated]:
    primary = PrivateCluster.primary()
    standby = None
    try:
        template = harness.migrated_template(
            primary.admin_url, harness.CENTRAL_MIGRATIONS, "central"
        )
        database = harness.create_database(primary.admin_url, template)
        seeded = seed(primary.url(database))
        standby = PrivateCluster.standby_of(primary)
        caught_up(primary, standby)
        yield Replicated(primary, standby, template, database, seeded)
    finally:
        if standby is not None:
            standby.stop()
        primary.stop()


def set_replay(replicated: Replicated, paused: bool) -> None:
    with psycopg.connect(replicated.standby.admin_url, autocommit=True) as conn:
        conn.execute(f"SELECT pg_wal_replay_{'pause' if paused else 'resume'}()")


@contextmanager
def replay_paused(replicated: Replicated) -> Iterator[None]:
    """The standby stops applying the primary's changes (it still receives them)."""
    set_replay(replicated, paused=True)
    try:
        yield
    finally:
        set_replay(replicated, paused=False)
    caught_up(replicated.primary, replicated.standby)


def power_point(db_url: str, site_id: int) -> int:
    with psycopg.connect(db_url) as conn:
        row = conn.execute(
            """SELECT p.id FROM meter_points p JOIN meters m ON m.id = p.meter_id
               WHERE m.site_id = %s AND m.external_id = 'm0' AND p.name = 'power_kw'""",
            (site_id,),
        ).fetchone()
    assert row is not None
    return int(row[0])


def add_later_readings(db_url: str, point_id: int, offset: int) -> None:
    """NEW_READINGS readings a minute apart from LATER + ``offset`` minutes, on the primary."""
    with psycopg.connect(db_url) as conn:
        conn.execute("SELECT ensure_readings_partitions(%s, %s)", (LATER, LATER))
        conn.execute(
            """INSERT INTO readings (point_id, ts, value)
               SELECT %s, %s + make_interval(mins => i), 1000 + i
               FROM generate_series(0, %s - 1) AS i""",
            (point_id, LATER + timedelta(minutes=offset), NEW_READINGS),
        )


def api_readings(central: CentralServer, site_id: int) -> list[dict[str, Any]]:
    token = requests.post(
        central.url("/api/v1/auth/token"), auth=(ADMIN, PASSWORD), timeout=10
    ).json()["token"]
    answer = requests.get(
        central.url("/api/v1/readings"),
        params={"site_id": str(site_id), "from": LATER.isoformat()},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    items: list[dict[str, Any]] = answer.json()["readings"]
    return items


def exported(session: requests.Session, central: CentralServer, site_id: int, point: int) -> int:
    answer = session.get(
        central.url("/explorer/export.csv"),
        params={
            "site": str(site_id),
            "point": str(point),
            "range": "custom",
            "from": LATER.strftime("%Y-%m-%dT%H:%M"),
            "to": (LATER + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M"),
        },
        timeout=10,
    )
    assert answer.status_code == 200, answer.text[:300]
    return len(list(csv.DictReader(io.StringIO(answer.text))))


def test_pages_and_the_readings_api_read_the_replica_and_writes_go_to_the_primary(
    replicated: Replicated, make_central_server: Any
) -> None:
    central = make_central_server(
        db_url=replicated.primary_url, METERIT_READ_DATABASE_URL=replicated.standby_url
    )
    site = replicated.seeded.sites["plant-a"]
    point = power_point(replicated.primary_url, site)
    with replay_paused(replicated):
        add_later_readings(replicated.primary_url, point, offset=0)
        # signing in writes a session, which is checked on every later request: primary
        session = signed_in(central, ADMIN, PASSWORD)
        assert api_readings(central, site) == []
        assert exported(session, central, site, point) == 0
        for page in ("/", f"/explorer?site={site}&point={point}&range=7d"):
            shown = session.get(central.url(page), timeout=10)
            assert shown.status_code == 200, (page, shown.text[:300])
        # a write, and the page that must show it at once, use the primary
        token = requests.post(
            central.url("/api/v1/auth/token"), auth=(ADMIN, PASSWORD), timeout=10
        ).json()["token"]
        auth = {"Authorization": f"Bearer {token}"}
        made = requests.post(
            central.url("/api/v1/sites"), json={"name": "plant-new"}, headers=auth, timeout=10
        )
        assert made.status_code == 201, made.text
        listed = requests.get(central.url("/api/v1/sites"), headers=auth, timeout=10).json()
        assert "plant-new" in [s["name"] for s in listed["sites"]]
        shown = session.get(central.url(f"/sites/{made.json()['site_id']}"), timeout=10)
        assert shown.status_code == 200 and "plant-new" in shown.text
    # replayed: the same reads now see the primary's new readings
    assert [r["value"] for r in api_readings(central, site)] == [1000.0 + i for i in range(5)]
    assert exported(session, central, site, point) == NEW_READINGS


def test_mcp_reads_the_replica_and_sees_its_own_writes_on_the_primary(
    replicated: Replicated, redis_url: str, tmp_path: Path
) -> None:
    env = central_env(
        replicated.primary_url,
        redis_url,
        tmp_path,
        METERIT_READ_DATABASE_URL=replicated.standby_url,
    )
    server = HttpServer(env, tmp_path / "mcp.log")
    site = replicated.seeded.sites["plant-a"]
    token = replicated.seeded.tokens[ADMIN]
    window = {
        "site_id": site,
        "meter": "m0",
        "points": ["power_kw"],
        "start": (LATER + timedelta(hours=1)).isoformat(),
        "end": (LATER + timedelta(hours=2)).isoformat(),
    }

    async def calls(*steps: tuple[str, dict[str, Any]]) -> list[dict[str, Any]]:
        async with http_mcp(server.url, token) as client:
            return [ok(await client.call_tool(tool, args)) for tool, args in steps]

    try:
        point = power_point(replicated.primary_url, site)
        with replay_paused(replicated):
            add_later_readings(replicated.primary_url, point, offset=60)
            unseen, report = asyncio.run(
                calls(
                    ("query_readings", window),
                    ("generate_report", {"period": "day", "day": "2026-11-02", "tz": "UTC"}),
                )
            )
            assert unseen["returned"] == 0
            # the report was just asked for on the primary: its status must be found at once
            (status,) = asyncio.run(calls(("get_report", {"report_id": report["report_id"]})))
            assert status["status"] == "queued"
        (seen,) = asyncio.run(calls(("query_readings", window)))
        assert seen["returned"] == NEW_READINGS
    finally:
        assert server.stop() == 0, server.log()


def test_the_read_pool_refuses_writes_and_is_the_primary_when_no_replica_is_set(
    replicated: Replicated, redis_url: str
) -> None:
    settings = CentralSettings(database_url=replicated.primary_url, redis_url=redis_url)
    alone = create_app({"CENTRAL_SETTINGS": settings, "TESTING": True})
    with alone.app_context():
        assert read_pool() is pool()
    # even pointed at the primary, the read pool's sessions cannot write: a mistaken write
    # through it fails in every test run, not only in production where a replica refuses it
    split = create_app(
        {
            "CENTRAL_SETTINGS": settings,
            "READ_DATABASE_URL": replicated.primary_url,
            "TESTING": True,
        }
    )
    with split.app_context():
        assert read_pool() is not pool()
        with read_pool().connection() as conn, pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute("INSERT INTO tenants (name) VALUES ('nope')")
    for extension in (EXTENSION, READ_EXTENSION):
        split.extensions[extension].close()
    alone.extensions[EXTENSION].close()


def doctor_line(env: dict[str, str]) -> tuple[int, str]:
    rc, out = doctor("central", env)
    return rc, line(out, "read replica")


def test_doctor_checks_the_replica(replicated: Replicated, redis_url: str, tmp_path: Path) -> None:
    env = central_env(replicated.primary_url, redis_url, tmp_path)
    _, none = doctor_line(env)
    assert none.startswith("SKIP") and "read the primary" in none
    env["METERIT_READ_DATABASE_URL"] = replicated.standby_url
    _, healthy = doctor_line(env)
    assert healthy.startswith("OK") and "a standby" in healthy and "behind the primary" in healthy
    with replay_paused(replicated):
        rc, paused = doctor_line(env)
        assert rc >= 1 and paused.startswith("WARN") and "pg_wal_replay_resume" in paused
    rc, primary = doctor_line({**env, "METERIT_READ_DATABASE_URL": replicated.primary_url})
    assert rc >= 1 and primary.startswith("WARN") and "not a standby" in primary
    stopped = f"postgresql://postgres@127.0.0.1:{free_tcp_port()}/x"
    rc, gone = doctor_line({**env, "METERIT_READ_DATABASE_URL": stopped})
    assert rc == 2 and gone.startswith("FAIL") and "METERIT_READ_DATABASE_URL" in gone


@dataclass
class ReportDatabase:
    """A database of the report tests' known readings (``tests.report_data``) on the primary,
    replayed on the standby."""

    primary_url: str
    standby_url: str
    ids: dict[str, int]

    def make(self, read_url: str | None, replay_wait: timedelta = timedelta(seconds=60)) -> Any:
        """October's report by the worker's code, reading its figures from ``read_url``."""
        with psycopg.connect(self.primary_url) as conn:
            report_id = service.request_report(
                conn,
                self.ids["tenant"],
                None,
                {"kind": "month", "day": "2026-10-01"},
                "Europe/Paris",
                actor="test",
            )
            conn.commit()
            assert runner.run_one(conn, self.primary_url, read_url, replay_wait) == report_id
            result = service.get_result(conn, self.ids["tenant"], report_id)
            assert result is not None, service.get_report(conn, self.ids["tenant"], report_id)
        del result["generated_at"]
        return result

    def bump(self, kwh: float) -> None:
        """``kwh`` more in one October hour of the main counter, written to the primary."""
        with psycopg.connect(self.primary_url) as conn:
            conn.execute(
                """UPDATE readings_hourly SET slot_energy[1] = slot_energy[1] + %s
                   WHERE point_id = %s AND hour = '2026-10-15 10:00+00'""",
                (kwh, self.ids["main_energy"]),
            )


def hourly_scans(url: str) -> int:
    """How often this server has scanned the rollup table (each server counts its own), once
    the database's other sessions have ended: a session's statistics reach the server as its
    backend exits, a moment after its client has gone."""
    with psycopg.connect(url, autocommit=True) as conn:  # a fresh statistics snapshot per query
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            row = conn.execute(
                """SELECT count(*) FROM pg_stat_activity
                   WHERE datname = current_database() AND pid <> pg_backend_pid()"""
            ).fetchone()
            if row is not None and row[0] == 0:
                break
            time.sleep(0.05)
        row = conn.execute(
            """SELECT coalesce(seq_scan, 0) + coalesce(idx_scan, 0) FROM pg_stat_user_tables
               WHERE relname = 'readings_hourly'"""
        ).fetchone()
    assert row is not None
    return int(row[0])


def energy(result: Any) -> float:
    return float(result["fleet"]["figures"]["energy_kwh"])


@pytest.fixture(scope="module")
def reports_db(replicated: Replicated) -> Iterator[ReportDatabase]:
    name = harness.create_database(replicated.primary.admin_url, replicated.template)
    try:
        with psycopg.connect(replicated.primary.url(name)) as conn:
            ids = report_data.load(conn)
        caught_up(replicated.primary, replicated.standby)
        yield ReportDatabase(replicated.primary.url(name), replicated.standby.url(name), ids)
    finally:
        harness.drop_database(replicated.primary.admin_url, name)


def test_a_report_reads_its_figures_from_the_replica_and_they_are_the_primarys(
    reports_db: ReportDatabase,
) -> None:
    primary_before = hourly_scans(reports_db.primary_url)
    standby_before = hourly_scans(reports_db.standby_url)
    on_replica = reports_db.make(reports_db.standby_url)
    # its three aggregates ran on the standby (on one snapshot it exported there), none on
    # the primary, where the report's row and files were written
    assert hourly_scans(reports_db.standby_url) > standby_before
    assert hourly_scans(reports_db.primary_url) == primary_before
    on_primary = reports_db.make(None)
    assert hourly_scans(reports_db.primary_url) > primary_before  # the measure sees the primary
    assert on_replica == on_primary
    assert energy(on_replica) == 22372.0 + 5587.375  # tests/report_data.py's October
    assert on_replica["sites"][0]["meters"][0]["resets"]


def resume_once_waited_on(replicated: Replicated) -> None:
    """Resume the standby's replay once a report is seen waiting for it (its session's last
    query is the replay check)."""
    with psycopg.connect(replicated.standby.admin_url, autocommit=True) as conn:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            row = conn.execute(
                """SELECT count(*) FROM pg_stat_activity
                   WHERE query LIKE '%pg_last_wal_replay_lsn() >=%' AND pid <> pg_backend_pid()"""
            ).fetchone()
            if row and row[0]:
                break
            time.sleep(0.05)
    set_replay(replicated, paused=False)


def test_a_report_waits_for_the_replica_to_replay_what_the_primary_had_when_it_started(
    replicated: Replicated, reports_db: ReportDatabase
) -> None:
    """Figures that reached the primary just before the report started are in it, although
    the replica had not replayed them yet: the report waits for it (replay resumes once the
    report waits), then reads it."""
    before = reports_db.make(reports_db.standby_url)
    standby_before = hourly_scans(reports_db.standby_url)
    set_replay(replicated, paused=True)
    resume = threading.Thread(target=resume_once_waited_on, args=(replicated,))
    try:
        reports_db.bump(1000.0)
        resume.start()
        after = reports_db.make(reports_db.standby_url)
    finally:
        if resume.is_alive():
            resume.join()
        set_replay(replicated, paused=False)
        reports_db.bump(-1000.0)
        caught_up(replicated.primary, replicated.standby)
    assert energy(after) == energy(before) + 1000
    assert hourly_scans(reports_db.standby_url) > standby_before


def test_a_report_reads_the_primary_when_the_replica_is_too_far_behind(
    replicated: Replicated, reports_db: ReportDatabase, caplog: pytest.LogCaptureFixture
) -> None:
    before = reports_db.make(reports_db.standby_url)
    standby_before = hourly_scans(reports_db.standby_url)
    with replay_paused(replicated):
        reports_db.bump(1000.0)
        with caplog.at_level(logging.WARNING, logger="central.reports.source"):
            lagging = reports_db.make(reports_db.standby_url, replay_wait=timedelta(seconds=0.2))
        reports_db.bump(-1000.0)
    assert energy(lagging) == energy(before) + 1000  # the primary's figures, not the replica's
    assert "this report reads the primary" in caplog.text
    assert hourly_scans(reports_db.standby_url) == standby_before


@contextmanager
def standby_cancels_at_once(replicated: Replicated) -> Iterator[None]:
    """``max_standby_streaming_delay = 0`` on the standby: replay waits for no query, it
    cancels the ones in its way at once ("conflict with recovery")."""
    with psycopg.connect(replicated.standby.admin_url, autocommit=True) as conn:
        conn.execute("ALTER SYSTEM SET max_standby_streaming_delay = 0")
        conn.execute("SELECT pg_reload_conf()")
    try:
        wait_for_setting(replicated.standby.admin_url, "max_standby_streaming_delay", "0")
        yield
    finally:
        with psycopg.connect(replicated.standby.admin_url, autocommit=True) as conn:
            conn.execute("ALTER SYSTEM RESET max_standby_streaming_delay")
            conn.execute("SELECT pg_reload_conf()")


def wait_for_setting(url: str, name: str, value: str) -> None:
    """Until a new session sees the reloaded setting (a reload reaches backends as they start)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with psycopg.connect(url, autocommit=True) as conn:
            row = conn.execute(f"SHOW {name}").fetchone()
        if row is not None and row[0] == value:
            return
        time.sleep(0.05)
    raise AssertionError(f"{name} did not become {value}")


@contextmanager
def rollup_locked_over_and_over(primary_url: str) -> Iterator[None]:
    """The primary takes and releases an ACCESS EXCLUSIVE lock on the rollup table every few
    milliseconds; the standby replays each, and a query holding the table there is in its way."""
    stop = threading.Event()

    def lock_and_release() -> None:
        with psycopg.connect(primary_url) as conn:
            while not stop.is_set():
                conn.execute("LOCK TABLE readings_hourly IN ACCESS EXCLUSIVE MODE")
                conn.commit()
                time.sleep(0.005)

    locker = threading.Thread(target=lock_and_release)
    locker.start()
    try:
        yield
    finally:
        stop.set()
        locker.join()


def test_a_report_the_replica_cancels_for_a_replay_conflict_is_read_again_from_the_primary(
    replicated: Replicated, reports_db: ReportDatabase, caplog: pytest.LogCaptureFixture
) -> None:
    on_primary = reports_db.make(None)
    with (
        standby_cancels_at_once(replicated),
        rollup_locked_over_and_over(reports_db.primary_url),
        caplog.at_level(logging.WARNING, logger="central.reports.source"),
    ):
        retried = reports_db.make(reports_db.standby_url)
    warnings = [r.getMessage() for r in caplog.records if r.name == "central.reports.source"]
    assert len(warnings) == 1, warnings
    assert "conflict with recovery" in warnings[0] and "it reads the primary" in warnings[0]
    assert retried == on_primary
