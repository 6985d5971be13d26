"""The receiving end of sd_notify, as systemd gives it to a ``Type=notify`` unit: a real
AF_UNIX datagram socket, every message kept with the monotonic time it arrived."""

from __future__ import annotations

import socket
import tempfile
import threading
import time
from pathlib import Path
from types import TracebackType


class NotifySocket:
    def __init__(self) -> None:
        # a short path: AF_UNIX paths are limited to 108 bytes
        self._dir = tempfile.TemporaryDirectory(prefix="meterit-notify-")
        self.path = str(Path(self._dir.name) / "sock")
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind(self.path)
        self._sock.settimeout(0.2)
        self.messages: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._receive, daemon=True)
        self._thread.start()

    def _receive(self) -> None:
        while not self._stop.is_set():
            try:
                data = self._sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            now = time.monotonic()
            self.messages.extend((now, line) for line in data.decode().splitlines())

    def times_of(self, message: str) -> list[float]:
        return [at for at, line in list(self.messages) if line == message]

    def statuses(self) -> list[str]:
        return [
            line.removeprefix("STATUS=")
            for _, line in list(self.messages)
            if line.startswith("STATUS=")
        ]

    def __enter__(self) -> NotifySocket:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join(5)
        self._sock.close()
        self._dir.cleanup()
