"""``meterit-central serve``: the central server under gunicorn with the repo's config.

It replaces itself with gunicorn (exec) so systemd's main PID is gunicorn's master, which does
the ``Type=notify`` handshake and handles SIGTERM/SIGHUP itself.
"""

from __future__ import annotations

from pathlib import Path

from central.settings import load_settings
from common.gunicorn import serve_main

CONFIG = Path(__file__).resolve().parent.parent / "gunicorn.conf.py"


def main(argv: list[str]) -> int:
    return serve_main(
        argv,
        prog="meterit-central serve",
        description="Run the central server.",
        config=CONFIG,
        load=load_settings,
        bind=lambda settings: settings.bind,
        bind_setting="METERIT_BIND",
    )
