"""``meterit-appliance worker``: the RQ worker plus RQ's cron for the periodic sync jobs.

Redis only carries jobs. The cron thread re-enqueues every periodic job on its interval (and at
once at start), and each job re-derives its work from the edge database, so a flushed or
restarted Redis, or a job killed halfway, loses nothing: the next run picks it up.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
import threading
from typing import Any

import redis
from rq import Queue, Worker
from rq.cron import CronScheduler
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from rq.utils import now as rq_now

from appliance.settings import ApplianceSettings, load_settings
from appliance.sync import jobs
from common import db
from common.config import ConfigError
from common.logs import setup_logging
from common.systemd import Notifier

logger = logging.getLogger(__name__)

RETENTION_INTERVAL_S = 3600
WORKER_TTL_S = 60  # RQ heartbeats (and our WATCHDOG) come at least every 45 s


class _NotifyingWorker(Worker):
    """An RQ worker whose heartbeats (idle or while a job runs) also feed systemd's watchdog."""

    notifier: Notifier | None = None

    def heartbeat(self, *args: Any, **kwargs: Any) -> None:
        super().heartbeat(*args, **kwargs)
        if self.notifier is not None:
            self.notifier.watchdog()


def schedule(settings: ApplianceSettings) -> list[tuple[str, int]]:
    """(job name, interval in seconds) of every periodic job."""
    return [
        ("upload", settings.upload_interval_s),
        ("heartbeat", settings.heartbeat_interval_s),
        ("meter_sync", settings.meter_sync_interval_s),
        ("retention", RETENTION_INTERVAL_S),
    ]


def _pending(job_id: str | None, connection: redis.Redis) -> bool:
    """Whether a job is still waiting or running."""
    if job_id is None:
        return False
    try:
        job = Job.fetch(job_id, connection=connection)
    except NoSuchJobError:  # expired, or Redis was flushed
        return False
    return job.get_status(refresh=False) in (JobStatus.QUEUED, JobStatus.STARTED)


def _enqueue_due(cron: CronScheduler, connection: redis.Redis, last: dict[str, str]) -> bool:
    """RQ's ``enqueue_jobs``, except that a job whose previous run (queued by this process) is
    still waiting or running is not queued again: a long upload run during an outage must not
    pile up runs behind it. Runs queued by an earlier, killed process do not count, so a
    restart always starts an upload at once."""
    enqueued = False
    for cron_job in cron.get_jobs():
        if not cron_job.should_run():
            continue
        if _pending(last.get(cron_job.name), connection):
            logger.debug("%s: previous run still pending, not queued again", cron_job.name)
        else:
            last[cron_job.name] = cron_job.enqueue(connection).id
            enqueued = True
        cron_job.set_enqueue_time(rq_now())
    return enqueued


def _cron_loop(settings: ApplianceSettings, stop: threading.Event) -> None:
    connection = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=5)
    cron = CronScheduler(connection=connection, logging_level=settings.log_level.upper())
    for name, interval in schedule(settings):
        func, timeout = jobs.JOBS[name]
        # ttl: a run still queued when the next is due is dropped rather than piling up
        cron.register(
            func,
            queue_name=jobs.QUEUE,
            interval=interval,
            job_timeout=timeout,
            ttl=interval,
            result_ttl=3600,
            failure_ttl=86400,
        )
    failing = False
    last: dict[str, str] = {}
    while not stop.is_set():
        try:
            if failing:
                cron.register_birth()
            if _enqueue_due(cron, connection, last):
                cron.save()
            cron.heartbeat()
            if failing:
                logger.info("Redis answers again; periodic jobs are being queued")
            failing = False
        except redis.RedisError as err:
            if not failing:
                logger.error(
                    "cannot queue periodic jobs, Redis at %s fails (%s); no reading is lost, "
                    "they wait in PostgreSQL — check redis-server",
                    settings.redis_url,
                    err,
                )
            failing = True
        stop.wait(min(max(cron.calculate_sleep_interval(), 0.2), 5.0))
    # gone already when Redis was flushed; nothing to tidy then
    with contextlib.suppress(Exception):
        cron.register_death()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="meterit-appliance worker",
        description="Run the sync worker: uploads, meter config, heartbeat, retention.",
    )
    parser.parse_args(argv)
    try:
        settings = load_settings()
    except ConfigError as err:
        sys.stderr.write(f"meterit-appliance: configuration error: {err}\n")
        return 78
    setup_logging("meterit-worker", settings.log_level)
    try:
        with db.connect(settings.database_url) as conn:
            conn.execute("SELECT 1 FROM appliance_state")
        connection = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=5)
        connection.ping()
    except Exception as err:
        logger.error(
            "worker cannot start: %s; check that PostgreSQL (METERIT_DATABASE_URL, migrated) "
            "and Redis (METERIT_REDIS_URL) are up",
            err,
        )
        return 1
    notifier = Notifier()
    stop = threading.Event()
    cron = threading.Thread(target=_cron_loop, args=(settings, stop), name="cron", daemon=True)
    cron.start()
    worker = _NotifyingWorker(
        [Queue(jobs.QUEUE, connection=connection)],
        connection=connection,
        worker_ttl=WORKER_TTL_S,
    )
    worker.notifier = notifier
    logger.info(
        "worker started: upload every %d s, heartbeat every %d s, meter sync every %d s",
        settings.upload_interval_s,
        settings.heartbeat_interval_s,
        settings.meter_sync_interval_s,
    )
    notifier.ready("waiting for jobs")
    try:
        worker.work(logging_level=settings.log_level.upper())
    finally:
        notifier.stopping()
        stop.set()
        cron.join(timeout=5)
    return 0
