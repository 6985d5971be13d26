"""An RQ worker with RQ's cron for periodic jobs, as both sides run it under systemd.

Redis only carries jobs. The cron thread re-enqueues every periodic job on its interval (and at
once at start), and each job re-derives its work from PostgreSQL, so a flushed or restarted
Redis, or a job killed halfway, loses nothing: the next run picks it up. With several workers on
one queue (central's, on many hosts) only the holder of the scheduler lease queues the periodic
jobs (``common.scheduler_lease``); all of them work the queue.

The units are ``Type=notify`` with ``WatchdogSec=``: READY comes once the database and Redis have
answered, WATCHDOG from the work loop itself. Idle, each turn of RQ's loop feeds it (also the
turns that retry an unreachable Redis: an outage is waited out, not punished with restarts that
would use up the unit's start limit), and RQ is told to turn at least every half watchdog period.
While a job runs the loop does not turn, so a helper feeds the watchdog for as long as the job is
within its own timeout plus half a period; past that RQ's SIGALRM has failed to stop it (it is
stuck where a signal cannot reach, e.g. in C code), the feeding stops and systemd restarts the
worker. So ``WatchdogSec=`` need not exceed the longest job, and a wedged worker is restarted.

Jobs run in the worker's own process (RQ's ``SimpleWorker``), not in a forked work horse: a
horse is a second copy of the interpreter for as long as a job runs (about 45 MB of RSS on the
appliance, whose units share a 300 MB budget), and isolation buys nothing here — a job that
dies takes the worker with it, systemd restarts it, and the next run re-derives the work.
Job timeouts still hold (RQ's SIGALRM death penalty in this, the main, thread).

Redis going away is one journal line and its return another (:mod:`common.failures`), whichever
of the work loop and the cron thread sees it first; RQ's own line per retry is held back. So is
the database, for a side that names its mode (the appliance's edge database): jobs failing on it
are one line, not a traceback per run, and the first job to succeed again says it is back.

Where RQ does not retry a lost Redis (while it records a job's end) its loop ends; the worker
then waits for Redis with the watchdog fed and starts a new loop, rather than exit into
restarts whose start-up check would fail until Redis is back.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import logging
import signal
import threading
import time
from collections.abc import Callable
from typing import Any, Literal, Protocol, TypeVar

import psycopg
import redis
from rq import Queue, SimpleWorker
from rq.cron import CronScheduler
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from rq.job_lifecycle import call_exception_handlers
from rq.utils import now as rq_now

from common import db, scheduler_lease
from common.config import EX_CONFIG, load_or_report
from common.failures import DISK_FULL, REDIS_DOWN, Mode, Outages, database_mode, first_line
from common.logs import setup_logging
from common.systemd import Notifier

logger = logging.getLogger(__name__)

WORKER_TTL_S = 60  # RQ's loop turns at least every WORKER_TTL_S - 15 s when idle
MAX_REDIS_RETRY_S = 60.0  # RQ's longest wait between attempts while Redis is unreachable
REDIS_ERRORS = (redis.ConnectionError, redis.TimeoutError)
REDIS_DOWN_CONSEQUENCE = (
    "no data is lost: the work waits in PostgreSQL and is queued again when Redis answers"
)


class _NoRetryLines(logging.Filter):
    """Holds back RQ's line per retry while Redis is away (:class:`Outages` says it once), and
    shortens the traceback it logs when its loop ends on a lost Redis to a line."""

    def filter(self, record: logging.LogRecord) -> bool:
        if "could not connect to Redis" in str(record.msg):
            return False
        if record.exc_info and isinstance(record.exc_info[1], REDIS_ERRORS):
            # its loop ended on a lost Redis, which ``run`` waits out: a line, not a traceback
            record.msg = f"{record.msg} ({first_line(record.exc_info[1]).replace('%', '%%')})"
            record.exc_info = None
        return True


@dataclasses.dataclass(frozen=True)
class Periodic:
    """A job the cron queues every ``interval_s``; it may run at most ``timeout_s``."""

    name: str
    func: Callable[[], Any]
    interval_s: int
    timeout_s: int


class _JobFeeder:
    """Feeds the watchdog from a helper thread while one job runs, until the job ends or until
    its timeout plus ``grace_s`` has passed (then RQ's death penalty has failed: stop feeding and
    say so, and systemd restarts the worker)."""

    def __init__(
        self,
        notifier: Notifier,
        interval_s: float,
        description: str,
        *,
        timeout_s: float,
        grace_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.notifier = notifier
        self.interval_s = interval_s
        self.description = description
        self.timeout_s = timeout_s
        self.clock = clock
        self.deadline = clock() + timeout_s + grace_s
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._feed, name="watchdog-job", daemon=True)

    def __enter__(self) -> _JobFeeder:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.thread.join()

    def within_time(self) -> bool:
        return self.clock() < self.deadline

    def _feed(self) -> None:
        while not self.done.wait(self.interval_s):
            if not self.within_time():
                logger.error(
                    "job %s is still running past its %.0f s timeout and RQ cannot stop it; "
                    "the watchdog is no longer fed, systemd restarts the worker",
                    self.description,
                    self.timeout_s,
                )
                return
            self.notifier.watchdog()


class _NotifyingWorker(SimpleWorker):
    """An RQ worker that feeds systemd's watchdog from its loop (see the module docstring)."""

    notifier: Notifier | None = None
    watchdog_interval_s: float | None = None
    outages: Outages | None = None
    database: Mode | None = None  # the database's failure mode, for a side that names one
    signalled = False  # SIGTERM / SIGINT asked it to stop (else a loop end is a failure)

    def request_stop(self, signum: Any, frame: Any) -> None:
        self.signalled = True
        super().request_stop(signum, frame)  # type: ignore[no-untyped-call]

    def heartbeat(self, *args: Any, **kwargs: Any) -> None:
        # each turn of RQ's loop starts with one, also the turns that retry a lost Redis
        try:
            super().heartbeat(*args, **kwargs)
            if self.outages is not None and kwargs.get("pipeline") is None:
                self.outages.recovered(REDIS_DOWN, "jobs are taken again")
        except REDIS_ERRORS as err:
            if self.outages is not None:
                self.outages.failing(REDIS_DOWN, first_line(err), REDIS_DOWN_CONSEQUENCE)
            raise
        finally:  # a turn that failed to reach Redis is still a turn of a live loop
            if self.notifier is not None:
                self.notifier.watchdog()

    def run_maintenance_tasks(self) -> None:
        # RQ ends its loop on any error raised here (it cleans registries at start and every
        # 10 min); a Redis outage must be waited out as the dequeue does, not end the worker
        try:
            super().run_maintenance_tasks()  # type: ignore[no-untyped-call]
        except REDIS_ERRORS as err:
            if self.outages is not None:
                self.outages.failing(REDIS_DOWN, first_line(err), REDIS_DOWN_CONSEQUENCE)

    def _database_mode(self, err: BaseException | None) -> Mode | None:
        if self.database is None or not isinstance(err, psycopg.OperationalError):
            return None
        return DISK_FULL if database_mode(err) is DISK_FULL else self.database

    def handle_exception(self, job: Job, *exc_info: Any) -> None:
        mode = self._database_mode(exc_info[1])
        if mode is None or self.outages is None:
            super().handle_exception(job, *exc_info)
            return
        self.outages.failing(
            mode,
            f"{job.func_name}: {first_line(exc_info[1])}",
            "the jobs run again on their schedule; no reading is lost",
        )
        call_exception_handlers(self._exc_handlers, job, *exc_info)

    def handle_job_success(self, *args: Any, **kwargs: Any) -> None:
        super().handle_job_success(*args, **kwargs)
        if self.database is not None and self.outages is not None:
            for mode in (self.database, DISK_FULL):
                self.outages.recovered(mode, "jobs run through again")

    def execute_job(self, job: Job, queue: Queue) -> None:
        interval = self.watchdog_interval_s
        if interval is None or self.notifier is None:
            super().execute_job(job, queue)
            return
        # RQ sets every job's timeout when it is queued; -1 is "no limit", honoured here too
        timeout = float("inf") if job.timeout in (None, -1) else float(job.timeout)
        name = f"{job.func_name} ({job.id})"
        with _JobFeeder(self.notifier, interval, name, timeout_s=timeout, grace_s=interval):
            super().execute_job(job, queue)


def _rq_level(log_level: str) -> str:
    """RQ's own loggers at WARNING or above unless debugging: RQ sets the level it is given,
    and at INFO it logs three lines for every job, every few seconds, into the journal."""
    level = log_level.upper()
    return level if level in ("DEBUG", "ERROR") else "WARNING"


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
    restart always starts a run at once."""
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


def _cron_loop(
    redis_url: str,
    queue: str,
    periodic: list[Periodic],
    log_level: str,
    stop: threading.Event,
    *,
    lease_ttl_s: float = scheduler_lease.DEFAULT_TTL_S,
    outages: Outages | None = None,
) -> None:
    outages = outages or Outages(logger)
    connection = redis.Redis.from_url(redis_url, socket_connect_timeout=5)
    cron = CronScheduler(connection=connection, logging_level=_rq_level(log_level))
    lease = scheduler_lease.SchedulerLease(connection, queue, lease_ttl_s)
    leading = False
    for job in periodic:
        # ttl: a run still queued when the next is due is dropped rather than piling up
        cron.register(
            job.func,
            queue_name=queue,
            interval=job.interval_s,
            job_timeout=job.timeout_s,
            ttl=job.interval_s,
            result_ttl=3600,
            failure_ttl=86400,
        )
    failing = False
    last: dict[str, str] = {}
    while not stop.is_set():
        try:
            if failing:
                cron.register_birth()
            if lease.hold() != leading:
                leading = not leading
                logger.info(
                    "this worker %s the periodic jobs",
                    "now queues" if leading else "no longer queues (another worker does)",
                )
            if leading and _enqueue_due(cron, connection, last):
                cron.save()
            cron.heartbeat()
            outages.recovered(REDIS_DOWN, "periodic jobs are queued again")
            failing = False
        except redis.RedisError as err:
            outages.failing(REDIS_DOWN, first_line(err), REDIS_DOWN_CONSEQUENCE)
            failing = True
        # turn well within the lease's TTL, so a holder never loses it while alive
        stop.wait(min(max(cron.calculate_sleep_interval(), 0.2), 5.0, lease_ttl_s / 3))
    # gone already when Redis was flushed; nothing to tidy then
    with contextlib.suppress(Exception):
        cron.register_death()
    with contextlib.suppress(Exception):
        lease.release()


class WorkerSettings(Protocol):
    """What a worker needs of its side's settings (appliance or central)."""

    @property
    def database_url(self) -> str: ...

    @property
    def redis_url(self) -> str: ...

    @property
    def log_level(self) -> str: ...


S = TypeVar("S", bound=WorkerSettings)


def main(
    argv: list[str],
    *,
    prog: str,
    description: str,
    load: Callable[[], S],
    identifier: str,
    probe_sql: str,
    queue: str,
    schedule: Callable[[S], list[Periodic]],
    background: Callable[[S, threading.Event], object] | None = None,
    database: Mode | None = None,
) -> int:
    """A worker command: settings (exit 78 on a bad one), logging as ``identifier``, then
    refuse to start, in one line, unless the (migrated) database and Redis answer; then work
    ``queue`` until SIGTERM. ``background`` starts a side's own thread, stopped with the
    event it is given; ``database`` names the mode of jobs failing on the database."""
    argparse.ArgumentParser(prog=prog, description=description).parse_args(argv)
    settings = load_or_report(load, prog.split(maxsplit=1)[0])
    if settings is None:
        return EX_CONFIG
    setup_logging(identifier, settings.log_level)
    try:
        with db.connect(settings.database_url) as conn:
            conn.execute(probe_sql)
        redis.Redis.from_url(settings.redis_url, socket_connect_timeout=5).ping()
    except Exception as err:
        logger.error(
            "%s cannot start: %s; check that PostgreSQL (METERIT_DATABASE_URL, migrated) "
            "and Redis (METERIT_REDIS_URL) are up",
            identifier,
            err,
        )
        return 1
    start = None if background is None else (lambda stop: background(settings, stop))
    return run(
        settings.redis_url, queue, schedule(settings), settings.log_level, start, database=database
    )


def run(
    redis_url: str,
    queue: str,
    periodic: list[Periodic],
    log_level: str,
    background: Callable[[threading.Event], object] | None = None,
    *,
    database: Mode | None = None,
) -> int:
    """Work ``queue`` until SIGTERM, queueing ``periodic`` jobs on their intervals."""
    connection = redis.Redis.from_url(redis_url, socket_connect_timeout=5)
    notifier = Notifier()
    outages = Outages(logger)
    stop = threading.Event()
    if background is not None:
        background(stop)
    cron = threading.Thread(
        target=_cron_loop,
        args=(redis_url, queue, periodic, log_level, stop),
        kwargs={"outages": outages},
        name="cron",
        daemon=True,
    )
    cron.start()
    interval = notifier.watchdog_interval_s()
    logging.getLogger("rq.worker").addFilter(_NoRetryLines())
    logger.info(
        "worker started: %s",
        ", ".join(f"{job.name} every {job.interval_s} s" for job in periodic),
    )
    notifier.ready("waiting for jobs")
    try:
        while True:
            worker = _worker(
                queue,
                connection,
                notifier=notifier,
                interval=interval,
                outages=outages,
                database=database,
            )
            try:
                worker.work(logging_level=_rq_level(log_level))
            except REDIS_ERRORS as err:  # RQ's tidy-up after its loop, with Redis gone
                outages.failing(REDIS_DOWN, first_line(err), REDIS_DOWN_CONSEQUENCE)
            if worker.signalled:
                return 0
            after = _wait_out_redis(connection, notifier, interval, outages)
            if after == "stop":
                return 0
            if after == "answering":
                break
    finally:
        notifier.stopping()
        stop.set()
        cron.join(timeout=5)
    # RQ ends its loop, without raising, on errors it does not retry (e.g. a job whose stored
    # data cannot be read): a failure, so that systemd restarts the worker
    logger.error(
        "worker loop ended without a stop request (RQ's error is above); exiting with 1 "
        "for systemd to restart it"
    )
    return 1


def _worker(
    queue: str,
    connection: redis.Redis,
    *,
    notifier: Notifier,
    interval: float | None,
    outages: Outages,
    database: Mode | None,
) -> _NotifyingWorker:
    """A worker for one run of RQ's loop (a new name each time: RQ refuses to register a name
    whose last run could not record its death in a lost Redis)."""
    # idle, RQ's loop turns every worker_ttl - 15 s: at least every half watchdog period
    ttl = WORKER_TTL_S if interval is None else min(WORKER_TTL_S, 15 + max(1, int(interval)))
    worker = _NotifyingWorker(
        [Queue(queue, connection=connection)], connection=connection, worker_ttl=ttl
    )
    worker.notifier = notifier
    worker.outages = outages
    worker.database = database
    if interval is not None:
        worker.watchdog_interval_s = interval
        # while Redis is away a turn is a wait plus a failing heartbeat (up to its socket
        # timeout, dequeue timeout + 10 s): half a period for the wait keeps turns in time
        worker.max_connection_wait_time = min(MAX_REDIS_RETRY_S, interval / 2)
    return worker


def _wait_out_redis(
    connection: redis.Redis, notifier: Notifier, interval: float | None, outages: Outages
) -> Literal["back", "answering", "stop"]:
    """After RQ's loop ended on its own: wait out a lost Redis (lost at a moment RQ does not
    retry, e.g. while it records a job's end) with the watchdog fed, until it is "back" and a new
    loop can start. Restarting instead would fail the start-up check for as long as Redis is
    away and use up the unit's start limit. "answering" at once: the loop ended for another
    reason. "stop": SIGTERM or SIGINT came during the wait."""
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):  # RQ's handlers belong to the ended loop
        signal.signal(signum, lambda *_: stop.set())
    wait_s = 1.0 if interval is None else min(1.0, interval / 2)
    away = False
    while not stop.is_set():
        try:
            connection.ping()
        except REDIS_ERRORS as err:
            away = True
            outages.failing(REDIS_DOWN, first_line(err), REDIS_DOWN_CONSEQUENCE)
            notifier.watchdog()
            stop.wait(wait_s)
            continue
        if not away:
            return "answering"
        outages.recovered(REDIS_DOWN, "jobs are taken again")
        return "back"
    return "stop"
