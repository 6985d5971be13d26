"""``meterit-central worker``: the hourly rollup, alert evaluation, the e-mail outbox, reports,
pruning, and the watchdog that e-mails when the central database is unreachable."""

from __future__ import annotations

from central import jobs
from central.alerts import db_watchdog
from central.settings import load_settings
from common import rq_worker

PERIODIC = [
    rq_worker.Periodic("rollup", jobs.rollup_hours, jobs.ROLLUP_INTERVAL_S, jobs.JOB_TIMEOUT_S),
    rq_worker.Periodic("prune", jobs.prune, jobs.PRUNE_INTERVAL_S, jobs.JOB_TIMEOUT_S),
    rq_worker.Periodic("alerts", jobs.evaluate_alerts, jobs.ALERTS_INTERVAL_S, jobs.JOB_TIMEOUT_S),
    rq_worker.Periodic("mail", jobs.drain_mail, jobs.MAIL_INTERVAL_S, jobs.JOB_TIMEOUT_S),
    rq_worker.Periodic(
        "reports", jobs.make_reports, jobs.REPORTS_INTERVAL_S, jobs.REPORTS_TIMEOUT_S
    ),
]


def main(argv: list[str]) -> int:
    return rq_worker.main(
        argv,
        prog="meterit-central worker",
        description="Run the central worker: hourly rollup every minute, alerts every 30 s, e-mail every 15 s, reports every 10 s, pruning daily.",
        load=load_settings,
        identifier="meterit-central-worker",
        probe_sql="SELECT 1 FROM readings_hourly_dirty",
        queue=jobs.QUEUE,
        schedule=lambda _settings: PERIODIC,
        # alerts about the central database itself cannot wait in it: see db_watchdog
        background=db_watchdog.start,
    )
