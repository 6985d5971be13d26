"""The central RQ worker's periodic jobs. Like the appliance's, they take no objects and load
the settings themselves; their state lives in the central database, so any run may be killed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from central import locks, retention, rollup
from central.alerts import evaluate
from central.mail import drain
from central.mail.smtp import SmtpConfig, SmtpTransport
from central.reports import runner
from central.settings import load_settings
from common.db import connect

QUEUE = "meterit-central"
ROLLUP_INTERVAL_S = 60
PRUNE_INTERVAL_S = 86400
MAIL_INTERVAL_S = 15
ALERTS_INTERVAL_S = evaluate.INTERVAL_S
REPORTS_INTERVAL_S = 10
JOB_TIMEOUT_S = 600
# One report per run: the worker runs one job at a time, so the alerts and mail jobs queued
# meanwhile get their turn between two reports.
REPORTS_PER_RUN = 1
REPORTS_TIMEOUT_S = 1800
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
            alerts=timedelta(days=settings.alert_history_days),
            mail=timedelta(days=settings.mail_days),
        )


def drain_mail() -> dict[str, int]:
    """Send the outbox's due e-mails; one drain at a time across all workers."""
    settings = load_settings()
    with connect(settings.database_url) as conn, locks.held(conn, locks.MAIL_DRAIN) as got:
        if not got:
            return {"skipped": 1}
        with SmtpTransport(SmtpConfig.from_settings(settings)) as transport:
            return drain.run(conn, transport, datetime.now(UTC), settings.mail_hourly_cap).as_dict()


def evaluate_alerts() -> dict[str, Any]:
    """Evaluate every alert rule and queue the e-mails due (one evaluator at a time)."""
    settings = load_settings()
    with connect(settings.database_url) as conn:
        return evaluate.run(conn, settings, datetime.now(UTC)).as_dict()


def make_reports() -> dict[str, int]:
    """Request due scheduled reports and make waiting ones (``central.reports.runner``), their
    figures read from the read replica when one is set."""
    settings = load_settings()
    with connect(settings.database_url) as conn:
        return runner.tick(
            conn,
            settings.database_url,
            datetime.now(UTC),
            REPORTS_PER_RUN,
            settings.read_database_url,
        )
