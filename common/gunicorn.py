"""Start a Flask app under gunicorn the way systemd wants it."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn, TypeVar

from common.config import EX_CONFIG, load_or_report

S = TypeVar("S")


def exec_gunicorn(config: Path, bind: str, extra: list[str]) -> NoReturn:
    """Replace this process with gunicorn (exec), so systemd's main PID is gunicorn's master,
    which does the ``Type=notify`` handshake and handles SIGTERM/SIGHUP itself."""
    cmd = [sys.executable, "-m", "gunicorn", "--config", str(config), "--bind", bind, *extra]
    os.execv(sys.executable, cmd)


def serve_main(
    argv: list[str],
    *,
    prog: str,
    description: str,
    config: Path,
    load: Callable[[], S],
    bind: Callable[[S], str],
    bind_setting: str,
) -> int:
    """A ``serve`` command: check the settings once, in one line (rather than in every
    worker), then exec gunicorn with ``config`` on ``--bind`` or the configured address.
    Arguments it does not know are gunicorn's."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--bind", help=f"address:port (default: {bind_setting})")
    args, extra = parser.parse_known_args(argv)
    settings = load_or_report(load, prog)
    if settings is None:
        return EX_CONFIG
    exec_gunicorn(config, args.bind or bind(settings), extra)
