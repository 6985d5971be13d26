"""One scheduler among many workers (``common.scheduler_lease``), against a real Redis: two cron
loops on one queue queue each periodic job once, and the other takes over when the holder
stops."""

from __future__ import annotations

import os
import subprocess
import threading
import time

import redis
from rq import Queue

from common import rq_worker
from common.scheduler_lease import SchedulerLease
from tests.sync_helpers import wait_until

QUEUE = "lease-test"


def tick() -> None:
    """The periodic job; never run here (no worker takes the queue), only queued."""


def test_one_worker_holds_the_lease_until_it_lets_go_or_dies(redis_url: str) -> None:
    connection = redis.Redis.from_url(redis_url)
    first, second = SchedulerLease(connection, QUEUE), SchedulerLease(connection, QUEUE)
    assert first.hold() and first.hold()  # taken, then renewed
    assert not second.hold()
    assert first.current_holder() == first.holder
    first.release()
    assert second.hold() and not first.hold()
    # a holder that stops renewing (killed) loses the lease once its TTL has run out
    short = SchedulerLease(connection, "lease-ttl", ttl_s=0.3)
    other = SchedulerLease(connection, "lease-ttl", ttl_s=0.3)
    assert short.hold() and not other.hold()
    wait_until(other.hold, 5, "the lease to expire and be taken over")
    connection.close()


def test_a_worker_restarted_after_a_crash_takes_over_a_dead_local_holder_at_once(
    redis_url: str,
) -> None:
    connection = redis.Redis.from_url(redis_url)
    lease = SchedulerLease(connection, QUEUE)
    gone = subprocess.Popen(["true"])
    gone.wait()
    # a holder on another host, or alive on this one, keeps the lease until its TTL runs out
    for holder in (f"elsewhere:{gone.pid}:n", f"{lease.host}:{os.getpid()}:n"):
        connection.set(lease.key, holder, px=30_000)
        assert not lease.hold()
    connection.set(lease.key, f"{lease.host}:{gone.pid}:n", px=30_000)  # killed with SIGKILL
    assert lease.hold() and lease.current_holder() == lease.holder
    connection.close()


def test_two_workers_queue_each_periodic_job_once_and_the_other_takes_over(
    redis_url: str,
) -> None:
    periodic = [rq_worker.Periodic("tick", tick, interval_s=60, timeout_s=10)]
    connection = redis.Redis.from_url(redis_url)
    queue = Queue(QUEUE, connection=connection)
    stops = [threading.Event(), threading.Event()]
    loops = [
        threading.Thread(
            target=rq_worker._cron_loop,
            args=(redis_url, QUEUE, periodic, "warning", stop),
            kwargs={"lease_ttl_s": 3.0},
            daemon=True,
        )
        for stop in stops
    ]
    try:
        loops[0].start()  # first: it takes the lease
        wait_until(lambda: queue.count >= 1, 10, "the first run to be queued")
        loops[1].start()
        # every loop queues each job at its start; without the lease the second would too
        time.sleep(2.5)
        assert queue.count == 1
        stops[0].set()  # a clean stop gives the lease up; the second loop queues from then on
        loops[0].join(timeout=10)
        wait_until(lambda: queue.count == 2, 10, "the other worker to queue the job")
    finally:
        for stop in stops:
            stop.set()
        for loop in loops:
            loop.join(timeout=10)
        connection.close()
