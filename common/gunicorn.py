"""Start a Flask app under gunicorn the way systemd wants it."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import NoReturn


def exec_gunicorn(config: Path, bind: str, extra: list[str]) -> NoReturn:
    """Replace this process with gunicorn (exec), so systemd's main PID is gunicorn's master,
    which does the ``Type=notify`` handshake and handles SIGTERM/SIGHUP itself."""
    cmd = [sys.executable, "-m", "gunicorn", "--config", str(config), "--bind", bind, *extra]
    os.execv(sys.executable, cmd)
