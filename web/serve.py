"""``meterit-appliance web``: the local web UI under gunicorn.

It replaces itself with gunicorn (exec) so systemd's main PID is gunicorn's master, which does
the ``Type=notify`` handshake and handles SIGTERM/SIGHUP itself.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from appliance.settings import load_settings
from common.config import ConfigError
from common.gunicorn import exec_gunicorn

CONFIG = Path(__file__).resolve().parent / "gunicorn.conf.py"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="meterit-appliance web", description="Run the local web UI (gunicorn)."
    )
    parser.add_argument("--bind", help="address:port (default: METERIT_WEB_BIND)")
    args, extra = parser.parse_known_args(argv)
    try:
        settings = load_settings()  # fail here, in one line, rather than in every worker
    except ConfigError as err:
        sys.stderr.write(f"meterit-appliance web: configuration error: {err}\n")
        return 78
    exec_gunicorn(CONFIG, args.bind or settings.web_bind, extra)
