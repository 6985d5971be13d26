"""The central RQ worker's periodic jobs. Like the appliance's, they take no objects and load
the settings themselves; their state lives in the central database, so any run may be killed."""

from __future__ import annotations

from datetime import timedelta

from central import retention, rollup
from central.settings import load_settings
from common.db import connect

QUEUE = "meterit-central"
ROLLUP_INTERVAL_S = 60
PRUNE_INTERVAL_S = 86400
JOB_TIMEOUT_S = 600
# the current hour is recomputed once its newest mark is this old (see central.rollup)
ROLLUP_SETTLE = timedelta(minutes=5)


def rollup_hours() -> int:
    settings = load_settings()
    with connect(settings.database_url) as conn:
        return rollup.run_all(conn, ROLLUP_SETTLE)


def prune() -> dict[str, int]:
    settings = load_settings()
    with connect(settings.database_url) as conn:
        return retention.prune(
            conn,
            timedelta(days=settings.batch_answer_days),
            timedelta(days=settings.heartbeat_days),
        )
