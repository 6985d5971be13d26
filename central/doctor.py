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
