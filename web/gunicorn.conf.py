"""gunicorn configuration for the local web UI (``meterit-appliance web`` uses it).

A technician or two and their polling pages: one worker process with four threads is plenty
(``METERIT_WEB_WORKERS`` adds more), and keeps the appliance inside its memory budget. The
master stays small: it never imports the app (only the session key, from a Flask-free module).
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
    from web.secret_key import persistent_secret_key

    persistent_secret_key(_settings)


def post_fork(server: Any, worker: Any) -> None:
    setup_logging("meterit-web", _settings.log_level)
