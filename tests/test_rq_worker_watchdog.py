"""The RQ workers under systemd's watchdog (``Type=notify``, ``WatchdogSec=``).

The real central worker process runs with a real sd_notify socket (a Unix datagram socket
here, as systemd gives it) and a short watchdog period (``WATCHDOG_USEC`` = 2 s, so it must be
fed every second). What systemd would do with the messages is its business; what is checked is
that the worker sends READY after its start-up checks, keeps WATCHDOG coming while idle, while a
long healthy job runs and while Redis is down, and stops it when a job is stuck past its timeout;
and that a Redis outage is one journal line when it starts and one when it ends.
"""

from __future__ import annotations

import logging
import os
import queue as queues
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from rq import Queue
from rq.job import Job, JobStatus

from central import jobs
from common import rq_worker
from common.failures import Outages
from tests.private_redis import PrivateRedis

ROOT = Path(__file__).resolve().parent.parent
WATCHDOG_USEC = 2_000_000  # fed every 1 s
WAIT_S = 15  # generous bound for one message; a loaded CI machine is slow, not wrong


class Worker:
    def __init__(self, db_url: str, redis_url: str, tmp: Path) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="rqwd-"))  # short: AF_UNIX paths are limited
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify.bind(str(self.dir / "notify"))
        self.notify.settimeout(0.2)
        # read at once, as systemd does: a full datagram queue would block the worker's send
        self.messages: queues.Queue[str] = queues.Queue()
        self.closed = threading.Event()
        threading.Thread(target=self._receive, daemon=True).start()
        self.log_path = tmp / "worker.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("METERIT_")}
        env |= {
            "METERIT_CONFIG": str(tmp / "central-test.toml"),
            "METERIT_DATABASE_URL": db_url,
            "METERIT_REDIS_URL": redis_url,
            "NOTIFY_SOCKET": str(self.dir / "notify"),
            "WATCHDOG_USEC": str(WATCHDOG_USEC),
        }
        (tmp / "central-test.toml").touch()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "central", "worker"],
            cwd=ROOT,
            env=env,
            stdout=self.log_path.open("wb"),
            stderr=subprocess.STDOUT,
        )

    def _receive(self) -> None:
        while not self.closed.is_set():
            try:
                self.messages.put(self.notify.recv(4096).decode())
            except TimeoutError:
                continue
            except OSError:
                return

    def message(self, wait_s: float = WAIT_S) -> str:
        try:
            return self.messages.get(timeout=wait_s)
        except queues.Empty:
            raise AssertionError(f"no sd_notify message in {wait_s} s:\n{self.log()}") from None

    def drain(self) -> None:
        while not self.messages.empty():
            self.messages.get_nowait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, text: str) -> None:
        deadline = time.monotonic() + 60
        while text not in self.log():
            assert self.process.poll() is None, self.log()
            assert time.monotonic() < deadline, f"no {text!r} in the log:\n{self.log()}"
            time.sleep(0.2)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.closed.set()
        self.notify.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def start_worker(central_db_url: str, tmp_path: Path) -> Iterator[Callable[[str], Worker]]:
    """Start the real central worker against ``redis_url``; killed at the end of the test."""
    started: list[Worker] = []

    def start(redis_url: str) -> Worker:
        started.append(Worker(central_db_url, redis_url, tmp_path))
        return started[-1]

    yield start
    for worker in started:
        worker.close()


def queue(redis_url: str) -> Queue:
    return Queue(jobs.QUEUE, connection=redis.Redis.from_url(redis_url))


def wait_status(job: Job, *statuses: JobStatus) -> JobStatus:
    deadline = time.monotonic() + 60
    while (status := job.get_status()) not in statuses:
        assert time.monotonic() < deadline, f"job {job.id} still {status}"
        time.sleep(0.1)
    return status


def test_ready_after_the_checks_then_watchdog_while_idle(
    start_worker: Callable[[str], Worker], redis_url: str
) -> None:
    worker = start_worker(redis_url)
    assert worker.message().startswith("READY=1")
    assert [worker.message() for _ in range(4)] == ["WATCHDOG=1"] * 4


def test_a_long_healthy_job_keeps_the_watchdog_fed(
    start_worker: Callable[[str], Worker], redis_url: str
) -> None:
    worker = start_worker(redis_url)
    assert worker.message().startswith("READY=1")
    job = queue(redis_url).enqueue("tests.rq_jobs.sleep_for", 6, job_timeout=60)
    wait_status(job, JobStatus.STARTED)
    worker.drain()
    fed = 0
    while job.get_status() == JobStatus.STARTED:
        assert worker.message() == "WATCHDOG=1"
        fed += 1
    assert wait_status(job, JobStatus.FINISHED) == JobStatus.FINISHED
    # six seconds of job, a feed a second: without the job's feeder there would be none
    assert fed >= 3, worker.log()


def test_a_job_stuck_past_its_timeout_starves_the_watchdog(
    start_worker: Callable[[str], Worker], redis_url: str
) -> None:
    worker = start_worker(redis_url)
    assert worker.message().startswith("READY=1")
    queue(redis_url).enqueue("tests.rq_jobs.stuck", 600, job_timeout=2)
    worker.wait_for_log("past its 2 s timeout")
    worker.drain()
    with pytest.raises(AssertionError, match="no sd_notify message"):
        worker.message(wait_s=3 * WATCHDOG_USEC / 2_000_000)  # systemd now restarts the worker
    assert worker.process.poll() is None  # still stuck: the restart is systemd's to do


def wait_idle(redis_url: str) -> None:
    """The jobs queued at start are done (the next may be due any moment: reports come every
    10 s, so a test that stops Redis may still catch one ending)."""
    q = queue(redis_url)
    deadline = time.monotonic() + 60
    # first queued (READY can come before the cron thread has queued them), then all worked
    while not q.finished_job_registry.count or q.count or q.started_job_registry.count:
        assert time.monotonic() < deadline, "the start-up jobs did not finish"
        time.sleep(0.1)


def waits_out_the_outage(worker: Worker, private_redis: PrivateRedis) -> None:
    """Redis is away: the watchdog stays fed, the worker alive, and it works once Redis is back."""
    worker.drain()
    assert [worker.message() for _ in range(4)] == ["WATCHDOG=1"] * 4
    assert worker.process.poll() is None, worker.log()
    private_redis.start()
    job = queue(private_redis.url).enqueue("tests.rq_jobs.sleep_for", 0, job_timeout=60)
    assert wait_status(job, JobStatus.FINISHED, JobStatus.FAILED) == JobStatus.FINISHED


def test_a_redis_outage_is_waited_out_with_the_watchdog_fed(
    start_worker: Callable[[str], Worker], private_redis: PrivateRedis
) -> None:
    worker = start_worker(private_redis.url)
    assert worker.message().startswith("READY=1")
    wait_idle(private_redis.url)
    private_redis.stop()
    waits_out_the_outage(worker, private_redis)


def lose_redis_while_a_job_ends(
    start_worker: Callable[[str], Worker], private_redis: PrivateRedis
) -> Worker:
    """RQ does not retry Redis while it records a job's end: its loop ends (seen once in CI)."""
    worker = start_worker(private_redis.url)
    assert worker.message().startswith("READY=1")
    wait_idle(private_redis.url)
    job = queue(private_redis.url).enqueue("tests.rq_jobs.sleep_for", 3, job_timeout=60)
    wait_status(job, JobStatus.STARTED)
    private_redis.stop()
    worker.wait_for_log("found an unhandled exception")
    return worker


def test_redis_lost_while_a_job_ends_is_waited_out_not_exited(
    start_worker: Callable[[str], Worker], private_redis: PrivateRedis
) -> None:
    """Exiting would fail every restart's start-up check for as long as Redis is away (and use
    up the unit's start limit): the worker waits the outage out and starts a new loop."""
    worker = lose_redis_while_a_job_ends(start_worker, private_redis)
    waits_out_the_outage(worker, private_redis)
    worker.wait_for_log("Redis answers again")
    assert "Traceback" not in worker.log(), "RQ's traceback for a lost Redis: a line is enough"
    assert "worker loop ended without a stop request" not in worker.log()


def test_a_stop_request_while_waiting_out_redis_exits_cleanly(
    start_worker: Callable[[str], Worker], private_redis: PrivateRedis
) -> None:
    worker = lose_redis_while_a_job_ends(start_worker, private_redis)
    worker.drain()
    assert worker.message() == "WATCHDOG=1"  # waiting
    worker.process.terminate()
    assert worker.process.wait(30) == 0, worker.log()  # a stop, not a failure to restart
    while (message := worker.message()) != "STOPPING=1":
        assert message == "WATCHDOG=1"


def test_a_worker_whose_loop_rq_ends_exits_with_a_failure_for_systemd(
    start_worker: Callable[[str], Worker], redis_url: str
) -> None:
    """RQ leaves its loop, without raising, on an error it does not handle (here a job whose
    stored data cannot be read); exiting 0 then would leave the unit (Restart=on-failure)
    stopped for good."""
    worker = start_worker(redis_url)
    assert worker.message().startswith("READY=1")
    wait_idle(redis_url)
    q = queue(redis_url)
    with q.connection.pipeline() as pipe:  # queued and corrupted at once: no worker sees it whole
        pipe.multi()
        job = q.enqueue("tests.rq_jobs.sleep_for", 0, job_timeout=60, pipeline=pipe)
        pipe.hset(job.key, "data", b"\x80not a pickle")
        pipe.execute()
    assert worker.process.wait(60) == 1, worker.log()
    assert "worker loop ended without a stop request" in worker.log()


def test_a_redis_outage_is_one_journal_line_and_one_when_it_is_back(
    start_worker: Callable[[str], Worker], private_redis: PrivateRedis
) -> None:
    """RQ's work loop retries every half watchdog period and the cron thread every few seconds:
    neither may add a line per retry; whichever sees Redis go first says so, with the fix."""
    worker = start_worker(private_redis.url)
    assert worker.message().startswith("READY=1")
    wait_idle(private_redis.url)
    private_redis.stop()
    worker.wait_for_log("FAILURE=redis-down")
    worker.drain()
    assert [worker.message() for _ in range(6)] == ["WATCHDOG=1"] * 6  # retries meanwhile
    private_redis.start()
    job = queue(private_redis.url).enqueue("tests.rq_jobs.sleep_for", 0, job_timeout=60)
    assert wait_status(job, JobStatus.FINISHED, JobStatus.FAILED) == JobStatus.FINISHED
    worker.wait_for_log("Redis answers again")
    worker.drain()
    assert [worker.message() for _ in range(3)] == ["WATCHDOG=1"] * 3  # time for a relapse
    lines = [line for line in worker.log().splitlines() if "[FAILURE=redis-down]" in line]
    assert len(lines) == 2, worker.log()
    assert " ERROR " in lines[0] and "Redis unreachable: " in lines[0]
    assert lines[0].endswith(
        "— check that redis-server runs ('systemctl status redis-server') and "
        "METERIT_REDIS_URL [FAILURE=redis-down]"
    )
    assert " INFO " in lines[1] and "Redis answers again after " in lines[1]
    assert "could not connect to Redis" not in worker.log(), "RQ's line per retry"


def test_a_redis_outage_during_rqs_registry_cleaning_is_waited_out(
    private_redis: PrivateRedis, caplog: pytest.LogCaptureFixture
) -> None:
    # RQ cleans its registries at start and every 10 min, and ends its loop on any error there:
    # Redis going away at that moment ended the worker (seen once in a full test run)
    connection = redis.Redis.from_url(private_redis.url)
    worker = rq_worker._NotifyingWorker(
        [Queue(jobs.QUEUE, connection=connection)], connection=connection
    )
    worker.outages = Outages(logging.getLogger("common.rq_worker"))
    private_redis.stop()
    with caplog.at_level(logging.ERROR, logger="common.rq_worker"):
        worker.run_maintenance_tasks()  # no exception: the outage is noted, the loop goes on
    assert [r.getMessage().split(":")[0] for r in caplog.records] == ["Redis unreachable"]
