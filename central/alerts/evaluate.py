"""One evaluation: conditions -> state machine -> notifications, under the evaluation lock.

The worker runs it every 30 s (``central.jobs.evaluate_alerts``); ``meterit-central alerts
evaluate [--at TIME]`` runs it once. Only one evaluation runs at a time across all workers and
hosts (``central.locks.ALERT_EVALUATION``); another one started meanwhile skips.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg

from central import locks
from central.alerts import conditions, engine, notify
from central.settings import CentralSettings

logger = logging.getLogger(__name__)

INTERVAL_S = 30


def policy(settings: CentralSettings) -> notify.Policy:
    return notify.Policy(
        group_wait=timedelta(seconds=settings.alert_group_wait_s),
        group_interval=timedelta(seconds=settings.alert_group_interval_s),
        repeat_interval=timedelta(seconds=settings.alert_repeat_interval_s),
        public_url=settings.public_url,
    )


@dataclass(frozen=True)
class Outcome:
    ran: bool
    conditions: int = 0
    changes: dict[str, int] | None = None
    emails: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "ran": self.ran,
            "conditions": self.conditions,
            **(self.changes or {}),
            "emails": self.emails,
            "seconds": round(self.seconds, 3),
        }


def run(conn: psycopg.Connection[Any], settings: CentralSettings, now: datetime) -> Outcome:
    with locks.held(conn, locks.ALERT_EVALUATION) as got:
        if not got:
            logger.info("alert evaluation skipped: another one is running")
            return Outcome(ran=False)
        started = time.perf_counter()
        # the condition queries are cheap but their estimates are not (CTEs over point_latest):
        # PostgreSQL's JIT then spends seconds compiling a query that runs in milliseconds
        conn.execute("SET jit = off")
        rules = policy(settings)
        held = conditions.collect(conn, now, float(settings.heartbeat_late_s))
        changes = engine.apply(conn, held, now, rules.repeat_interval)
        emails = notify.run(conn, now, rules)
        return Outcome(True, len(held), changes.as_dict(), emails, time.perf_counter() - started)
