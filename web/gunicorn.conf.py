"""gunicorn configuration for the local web UI (``meterit-appliance web`` uses it).

A technician or two and their polling pages: a couple of worker processes with a few threads
each is plenty, and keeps the appliance inside its memory budget.
"""

from __future__ import annotations

from typing import Any

from appliance.settings import load_settings
from common.logs import setup_logging

_settings = load_settings()

wsgi_app = "web.app:create_app()"
bind = [_settings.web_bind]
workers = _settings.web_workers
worker_class = "gthread"
threads = 4
timeout = 30
graceful_timeout = 10
keepalive = 5
accesslog = None
proc_name = "meterit-web"
# gunicorn's control socket is one fixed path per user: tests and systemd need none
control_socket_disable = True


def on_starting(server: Any) -> None:
    """Make the session key once, in the master, before any worker needs it."""
    from web.app import persistent_secret_key

    persistent_secret_key(_settings)


def post_fork(server: Any, worker: Any) -> None:
    setup_logging("meterit-web", _settings.log_level)
