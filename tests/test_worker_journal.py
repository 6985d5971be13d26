"""The appliance worker (``meterit-appliance worker``, a real process) with its edge database cut
off by a TCP proxy: the upload job fails on every run, and the journal gets one line naming the
edge database and the fix, not a traceback per run, and one line when a job runs through again."""

from __future__ import annotations

import time
from pathlib import Path

import redis
from rq.registry import FailedJobRegistry

from appliance.settings import load_settings
from appliance.sync import jobs
from tests import test_collector_journal
from tests.private_redis import PrivateRedis
from tests.sync_helpers import ApplianceProcess, settings_env, wait_until
from tests.tcp_proxy import TcpProxy
from tests.test_collector_journal import proxied

FIELD = "[FAILURE=edge-database-down]"

# the same fixture as the collector's tests: a TCP proxy in front of the edge database
db_proxy = test_collector_journal.db_proxy


def failed_runs(redis_url: str) -> int:
    with redis.Redis.from_url(redis_url) as connection:
        return FailedJobRegistry(jobs.QUEUE, connection=connection).count


def test_jobs_failing_on_a_lost_edge_database_are_one_line_and_one_when_it_is_back(
    edge_db_url: str,
    db_proxy: TcpProxy,
    private_redis: PrivateRedis,
    tmp_path: Path,
) -> None:
    settings = load_settings(
        {
            "METERIT_DATABASE_URL": proxied(edge_db_url, db_proxy),
            "METERIT_REDIS_URL": private_redis.url,
            # not enrolled anywhere that answers: the upload job still opens the edge database
            # first, every 5 s (the shortest interval)
            "METERIT_CENTRAL_URL": "http://127.0.0.1:9",
            "METERIT_API_KEY": "mtk_test",
            "METERIT_UPLOAD_INTERVAL_S": "5",
            "METERIT_UPLOAD_RETRY_BACKOFF_S": "0",
        }
    )
    worker = ApplianceProcess(["worker"], settings_env(settings, tmp_path), tmp_path / "worker.log")
    try:
        wait_until(lambda: "worker started" in worker.log(), 60, "the worker to start")
        db_proxy.cut()
        wait_until(lambda: failed_runs(private_redis.url) >= 3, 60, "three failed upload runs")
        db_proxy.mode = "pass"
        wait_until(lambda: "edge database answers again" in worker.log(), 60, "the recovery line")
        time.sleep(1)  # a relapse would show now
    finally:
        worker.stop(timeout=10)
    log = worker.log()
    lines = [line for line in log.splitlines() if FIELD in line]
    assert len(lines) == 2, log
    assert " ERROR " in lines[0]
    assert "edge database unreachable: appliance.sync.jobs.upload: " in lines[0]
    assert lines[0].endswith(
        "— check that PostgreSQL runs ('systemctl status postgresql') and METERIT_DATABASE_URL "
        + FIELD
    )
    assert " INFO " in lines[1] and "edge database answers again after " in lines[1]
    assert "Traceback" not in log, "RQ's traceback per failed run"
