"""``meterit-central serve``: the central server under gunicorn with the repo's config.

It replaces itself with gunicorn (exec) so systemd's main PID is gunicorn's master, which does
the ``Type=notify`` handshake and handles SIGTERM/SIGHUP itself.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from central.settings import load_settings
from common.config import EX_CONFIG, load_or_report
from common.gunicorn import exec_gunicorn

CONFIG = Path(__file__).resolve().parent.parent / "gunicorn.conf.py"


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="meterit-central serve", description="Run the central server.")
    p.add_argument("--bind", help="address:port (default: METERIT_BIND)")
    args, extra = p.parse_known_args(argv)
    settings = load_or_report(
        load_settings, "meterit-central serve"
    )  # fail here, in one line, rather than in every worker
    if settings is None:
        return EX_CONFIG
    exec_gunicorn(CONFIG, args.bind or settings.bind, extra)
