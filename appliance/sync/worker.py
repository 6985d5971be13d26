"""``meterit-appliance worker``: the RQ worker plus RQ's cron for the periodic sync jobs.

Each job re-derives its work from the edge database (see ``common.rq_worker``), so a flushed or
restarted Redis, or a job killed halfway, loses nothing.
"""

from __future__ import annotations

import argparse
import logging

from appliance.settings import ApplianceSettings, load_settings
from appliance.sync import jobs
from common import rq_worker
from common.config import EX_CONFIG, load_or_report
from common.logs import setup_logging

logger = logging.getLogger(__name__)

RETENTION_INTERVAL_S = 3600


def schedule(settings: ApplianceSettings) -> list[rq_worker.Periodic]:
    intervals = {
        "upload": settings.upload_interval_s,
        "heartbeat": settings.heartbeat_interval_s,
        "meter_sync": settings.meter_sync_interval_s,
        "retention": RETENTION_INTERVAL_S,
    }
    periodic = []
    for name, interval in intervals.items():
        func, timeout = jobs.JOBS[name]
        periodic.append(rq_worker.Periodic(name, func, interval, timeout))
    return periodic


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="meterit-appliance worker",
        description="Run the sync worker: uploads, meter config, heartbeat, retention.",
    )
    parser.parse_args(argv)
    settings = load_or_report(load_settings, "meterit-appliance")
    if settings is None:
        return EX_CONFIG
    setup_logging("meterit-worker", settings.log_level)
    return rq_worker.check_then_run(
        "worker",
        database_url=settings.database_url,
        probe_sql="SELECT 1 FROM appliance_state",
        redis_url=settings.redis_url,
        queue=jobs.QUEUE,
        periodic=schedule(settings),
        log_level=settings.log_level,
    )
