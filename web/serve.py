"""``meterit-appliance web``: the local web UI under gunicorn.

It replaces itself with gunicorn (exec) so systemd's main PID is gunicorn's master, which does
the ``Type=notify`` handshake and handles SIGTERM/SIGHUP itself.
"""

from __future__ import annotations

from pathlib import Path

from appliance.settings import load_settings
from common.gunicorn import serve_main

CONFIG = Path(__file__).resolve().parent / "gunicorn.conf.py"


def main(argv: list[str]) -> int:
    return serve_main(
        argv,
        prog="meterit-appliance web",
        description="Run the local web UI (gunicorn).",
        config=CONFIG,
        load=load_settings,
        bind=lambda settings: settings.web_bind,
        bind_setting="METERIT_WEB_BIND",
    )
