"""``meterit-appliance web``: the local web UI under gunicorn.

It replaces itself with gunicorn (exec) so systemd's main PID is gunicorn's master, which does
the ``Type=notify`` handshake and handles SIGTERM/SIGHUP itself.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from appliance.settings import load_settings
from common.config import EX_CONFIG, load_or_report
from common.gunicorn import exec_gunicorn

CONFIG = Path(__file__).resolve().parent / "gunicorn.conf.py"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="meterit-appliance web", description="Run the local web UI (gunicorn)."
    )
    parser.add_argument("--bind", help="address:port (default: METERIT_WEB_BIND)")
    args, extra = parser.parse_known_args(argv)
    settings = load_or_report(
        load_settings, "meterit-appliance web"
    )  # fail here, in one line, rather than in every worker
    if settings is None:
        return EX_CONFIG
    exec_gunicorn(CONFIG, args.bind or settings.web_bind, extra)
