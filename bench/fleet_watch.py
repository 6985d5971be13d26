"""What ``bench/fleet.py`` watches on central's side while the fleet runs: whether the hourly
rollup keeps up (from ``readings_hourly_dirty``, the marks ingest leaves for it), what the central
worker's jobs took (from RQ, which keeps each finished job with its start, end and result), and
the CPU time of central's own processes."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import redis
from rq import Queue, Worker
from rq.job import Job
from rq.registry import FailedJobRegistry, FinishedJobRegistry

from central import jobs

# a mark is due for the rollup job once its hour is over or it is ROLLUP_SETTLE old
# (central.rollup.CLAIM_SQL), and not before it was made (a backlog's past hours are due at
# once); lag is how long the longest-waiting due mark has been due
ROLLUP_LAG_SQL = """
SELECT count(*),
       coalesce(extract(epoch FROM now() - min(
           greatest(marked_at, least(hour + interval '1 hour', marked_at + %s)))), 0)
FROM readings_hourly_dirty
WHERE hour + interval '1 hour' <= now() OR marked_at <= now() - %s
"""


@dataclass(frozen=True, slots=True)
class RollupState:
    due_marks: int  # site-hours waiting for the rollup job
    lag_s: float  # how long the oldest of them has waited


def rollup_state(url: str) -> RollupState:
    with psycopg.connect(url) as conn:
        row = conn.execute(ROLLUP_LAG_SQL, (jobs.ROLLUP_SETTLE, jobs.ROLLUP_SETTLE)).fetchone()
    assert row is not None
    return RollupState(int(row[0]), float(row[1]))


@dataclass(frozen=True, slots=True)
class JobRun:
    name: str  # the job function's name: rollup_hours, evaluate_alerts, ...
    started: datetime
    seconds: float
    result: Any
    failed: bool


def _aware(ts: datetime | None) -> datetime | None:
    if ts is None:
        return None
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


class WorkerWatch:
    """The runs of one central worker process (found by its pid among RQ's workers: another
    central worker on the same Redis database would take jobs too, so it is refused)."""

    def __init__(self, redis_url: str, pid: int) -> None:
        self.connection = redis.Redis.from_url(redis_url)
        self.queue = Queue(jobs.QUEUE, connection=self.connection)
        self.pid = pid

    def worker_name(self) -> str | None:
        mine = None
        for worker in Worker.all(connection=self.connection, queue=self.queue):
            if worker.pid == self.pid:
                mine = worker.name
            elif worker.last_heartbeat is not None and _recent(worker.last_heartbeat):
                raise SystemExit(
                    f"another central worker ({worker.name}) serves queue {jobs.QUEUE!r} on this "
                    "Redis database and would take the fleet's jobs; give the benchmark a Redis "
                    "database of its own (METERIT_TEST_REDIS_URL=redis://host:6379/N)"
                )
        return mine

    def runs(self, since: datetime, worker: str | None) -> list[JobRun]:
        """The jobs ``worker`` finished or failed that started at or after ``since``."""
        out: list[JobRun] = []
        for registry, failed in (
            (FinishedJobRegistry(queue=self.queue), False),
            (FailedJobRegistry(queue=self.queue), True),
        ):
            ids = registry.get_job_ids()
            for job in Job.fetch_many(ids, connection=self.connection):
                if job is None:
                    continue
                started, ended = _aware(job.started_at), _aware(job.ended_at)
                if started is None or started < since or ended is None:
                    continue
                if worker is not None and job.worker_name not in (None, worker):
                    continue
                out.append(
                    JobRun(
                        (job.func_name or "?").rsplit(".", 1)[-1],
                        started,
                        (ended - started).total_seconds(),
                        None if failed else job.return_value(),
                        failed,
                    )
                )
        return sorted(out, key=lambda r: r.started)


def _recent(ts: datetime) -> bool:
    aware = _aware(ts)
    return aware is not None and datetime.now(UTC) - aware < timedelta(minutes=2)


class BackendCpu:
    """CPU time PostgreSQL spends for central: its backends on the fleet's database, sampled
    (a backend that lives between two samples, such as a short job's, is missed)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.baseline: dict[int, float] = {}
        self.last: dict[int, float] = {}

    def start(self) -> None:
        self.baseline = self._sample()
        self.last = dict(self.baseline)

    def sample(self) -> None:
        for pid, cpu in self._sample().items():
            self.baseline.setdefault(pid, 0.0)  # born during the window: all of it counts
            self.last[pid] = cpu

    def seconds(self) -> float:
        return sum(cpu - self.baseline.get(pid, 0.0) for pid, cpu in self.last.items())

    def _sample(self) -> dict[int, float]:
        with psycopg.connect(self.url) as conn:
            pids = [
                int(r[0])
                for r in conn.execute(
                    """SELECT pid FROM pg_stat_activity
                       WHERE datname = current_database() AND pid <> pg_backend_pid()"""
                )
            ]
        return {pid: process_cpu(pid) for pid in pids}


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of one process (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its children (gunicorn's workers), from /proc."""
    return sum(process_cpu(p) for p in [pid, *_children(pid)])


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as fh:
            return [int(c) for c in fh.read().split()]
    except OSError:
        return []


def loadavg() -> str:
    with open("/proc/loadavg") as fh:
        return " ".join(fh.read().split()[:3])
