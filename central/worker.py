"""``meterit-central worker``: keeps the hourly rollup current and prunes old batch answers."""

from __future__ import annotations

import argparse
import logging

from central import jobs
from central.settings import load_settings
from common import rq_worker
from common.config import EX_CONFIG, load_or_report
from common.logs import setup_logging

logger = logging.getLogger(__name__)

PERIODIC = [
    rq_worker.Periodic("rollup", jobs.rollup_hours, jobs.ROLLUP_INTERVAL_S, jobs.JOB_TIMEOUT_S),
    rq_worker.Periodic("prune", jobs.prune, jobs.PRUNE_INTERVAL_S, jobs.JOB_TIMEOUT_S),
]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="meterit-central worker",
        description="Run the central worker: hourly rollup every minute, pruning daily.",
    )
    parser.parse_args(argv)
    settings = load_or_report(load_settings, "meterit-central")
    if settings is None:
        return EX_CONFIG
    setup_logging("meterit-central-worker", settings.log_level)
    return rq_worker.check_then_run(
        "central worker",
        database_url=settings.database_url,
        probe_sql="SELECT 1 FROM readings_hourly_dirty",
        redis_url=settings.redis_url,
        queue=jobs.QUEUE,
        periodic=PERIODIC,
        log_level=settings.log_level,
    )
