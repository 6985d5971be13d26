"""gunicorn configuration for the central server (``meterit-central serve`` uses it).

Workers are processes (one per CPU by default: validation and JSON are CPU-bound Python); each
runs a few threads so one worker's database round trips overlap another request's parsing.
Any value here can still be overridden on the command line or with ``GUNICORN_CMD_ARGS``.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from typing import Any

from central.settings import load_settings
from common.logs import setup_logging

_settings = load_settings()

# Every worker must sign operator sessions (central/ui) with the same key, or a session made by
# one worker is refused by the next. Without a configured key the master makes one here, before
# forking, and the workers inherit it (sessions then end with a restart: configure one to keep them).
if not _settings.secret_key:
    os.environ["METERIT_SECRET_KEY"] = secrets.token_hex(32)

wsgi_app = "central.app:create_app()"
bind = [_settings.bind]
workers = _settings.gunicorn_workers or (os.cpu_count() or 1)
worker_class = "gthread"
threads = _settings.gunicorn_threads
# a 5000-reading batch takes well under a second; a stuck request should not hold a worker long
timeout = 60
graceful_timeout = 20
keepalive = 30
accesslog = None
proc_name = "meterit-central"
# gunicorn's control socket is one fixed path per user: several instances on a host (tests,
# benchmarks, blue/green) would fight over it, and systemd is the control interface anyway.
control_socket_disable = True


def _memory_dir() -> str | None:
    """A writable in-memory directory: systemd's RuntimeDirectory (/run is tmpfs), else
    /dev/shm; None leaves gunicorn's default (the system's temporary directory)."""
    runtime = os.environ.get("RUNTIME_DIRECTORY", "").split(":")[0]
    for path in (runtime, "/dev/shm"):
        if path and os.path.isdir(path) and os.access(path, os.W_OK | os.X_OK):
            return path
    return None


# Each worker touches a heartbeat file (utime) on every turn of its event loop, that is, every
# request: on a disk-backed /tmp that is an inode write and journal work per request (about 5 %
# of a worker's samples under py-spy, bench/sync_request.py). In memory it is a plain syscall.
worker_tmp_dir = _memory_dir()

# Prometheus multiprocess mode: every worker writes its counters here, /metrics sums them.
# Each request updates a few of them (mmapped files): in memory too, like the heartbeat file.
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(
        prefix="meterit-central-metrics-", dir=worker_tmp_dir
    )
    _owned_metrics_dir = os.environ["PROMETHEUS_MULTIPROC_DIR"]
else:
    _owned_metrics_dir = ""


def post_fork(server: Any, worker: Any) -> None:
    setup_logging("meterit-central", _settings.log_level)


def child_exit(server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]


def on_exit(server: Any) -> None:
    if _owned_metrics_dir:
        shutil.rmtree(_owned_metrics_dir, ignore_errors=True)
