"""``meterit-central doctor``: what central needs to take readings in, one line each
(``common.doctor`` holds the result type, the renderers and the shared checks)."""

from __future__ import annotations

import psycopg

from central.cli import MIGRATIONS
from central.settings import CentralSettings, load_settings
from common import doctor
from common.doctor import Check, CheckFn

UNITS = ("meterit-central.service", "meterit-central-worker.service")
DISK_WARN_FRACTION = 0.10
DISK_FAIL_FRACTION = 0.03


def checks(settings: CentralSettings) -> list[tuple[str, CheckFn]]:
    return [
        ("database", lambda: doctor.database(settings.database_url, MIGRATIONS, "central")),
        ("redis", lambda: doctor.redis_check(settings.redis_url, "jobs and rate limits")),
        ("database disk", lambda: database_disk(settings)),
        ("read replica", lambda: read_replica(settings)),
        ("units", lambda: doctor.units(UNITS)),
    ]


def main(argv: list[str]) -> int:
    return doctor.main("central", load_settings, checks, argv)


def database_disk(settings: CentralSettings) -> Check:
    """Free space where PostgreSQL keeps the data, when it runs on this host."""
    with psycopg.connect(settings.database_url, connect_timeout=doctor.TIMEOUT_S) as conn:
        try:
            row = conn.execute("SHOW data_directory").fetchone()
        except psycopg.Error:  # only superusers and pg_read_all_settings may ask
            return Check("database disk", "skip", "the database user may not see data_directory")
        size = conn.execute("SELECT pg_database_size(current_database())").fetchone()
    data_dir = str(row[0]) if row else ""
    free, total = doctor.disk_free(data_dir)
    used = doctor.human_bytes(size[0] if size else 0)
    detail = f"{doctor.human_bytes(free)} free of {doctor.human_bytes(total)} at {data_dir} (this database: {used})"
    fix = "free disk space or grow the volume holding PostgreSQL's data"
    if free < total * DISK_FAIL_FRACTION:
        return Check("database disk", "fail", detail, fix)
    if free < total * DISK_WARN_FRACTION:
        return Check("database disk", "warn", detail, fix)
    return Check("database disk", "ok", detail)


REPLICA_BEHIND_WARN_BYTES = 16 * 1024 * 1024  # one WAL segment: more is more than a hiccup


def read_replica(settings: CentralSettings) -> Check:
    """The replica that pages and MCP read, if one is set: reachable, a standby, replaying."""
    name = "read replica"
    if not settings.read_database_url:
        return Check(name, "skip", "none set: pages and MCP read the primary")
    try:
        with psycopg.connect(settings.read_database_url, connect_timeout=doctor.TIMEOUT_S) as rep:
            standby, paused, replayed = rep.execute(
                """SELECT pg_is_in_recovery(),
                          pg_is_in_recovery() AND pg_is_wal_replay_paused(),
                          pg_last_wal_replay_lsn()::text"""
            ).fetchone() or (False, False, None)
    except psycopg.Error as err:
        return Check(
            name,
            "fail",
            f"unreachable: {doctor.first_line(err)}",
            "start the replica's PostgreSQL or correct METERIT_READ_DATABASE_URL",
        )
    if not standby:
        return Check(
            name,
            "warn",
            "it is not a standby: pages read a second primary that ingest never writes",
            "point METERIT_READ_DATABASE_URL at a streaming replica of METERIT_DATABASE_URL",
        )
    if paused:
        return Check(
            name, "warn", "replay is paused: pages show old data", "SELECT pg_wal_replay_resume()"
        )
    with psycopg.connect(settings.database_url, connect_timeout=doctor.TIMEOUT_S) as primary:
        row = primary.execute(
            "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), %s::pg_lsn)", (replayed,)
        ).fetchone()
    behind = max(0, int(row[0])) if row and row[0] is not None else 0
    detail = f"a standby, {doctor.human_bytes(behind)} of WAL behind the primary"
    if behind > REPLICA_BEHIND_WARN_BYTES:
        return Check(
            name,
            "warn",
            detail,
            "check the replica's disk and network, and pg_stat_replication on the primary",
        )
    return Check(name, "ok", detail)
