"""The receiving end of journald's native protocol, as a test stands in for the journal: a real
AF_UNIX datagram socket that :class:`common.logs.JournalHandler` writes to, every entry decoded
with its fields (MESSAGE, PRIORITY, METER_ID, FAILURE, …)."""

from __future__ import annotations

import logging
import socket
import tempfile
import threading
from pathlib import Path
from types import TracebackType

from common import logs


def parse_journal(datagram: bytes) -> dict[str, str]:
    """Decode journald's native protocol, both the KEY=value and length-prefixed forms."""
    out: dict[str, str] = {}
    i = 0
    while i < len(datagram):
        nl = datagram.index(b"\n", i)
        line = datagram[i:nl]
        if b"=" in line:
            key, _, value = line.partition(b"=")
            out[key.decode()] = value.decode()
            i = nl + 1
        else:
            size = int.from_bytes(datagram[nl + 1 : nl + 9], "little")
            out[line.decode()] = datagram[nl + 9 : nl + 9 + size].decode()
            i = nl + 9 + size + 1
    return out


class JournalCapture:
    """While open, the root logger also writes to this journal (at INFO, as the daemons do)."""

    def __init__(self, identifier: str = "meterit-test") -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="meterit-journal-")
        path = str(Path(self._dir.name) / "socket")
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind(path)
        self._sock.settimeout(0.2)
        self.handler = logs.JournalHandler(identifier, socket_path=path)
        self._entries: list[dict[str, str]] = []
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._receive, daemon=True)

    def __enter__(self) -> JournalCapture:
        self._thread.start()
        root = logging.getLogger()
        self._level = root.level
        root.setLevel(logging.INFO)
        root.addHandler(self.handler)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None
    ) -> None:
        root = logging.getLogger()
        root.removeHandler(self.handler)
        root.setLevel(self._level)
        self.handler.close()
        self._closed.set()
        self._thread.join()
        self._sock.close()
        self._dir.cleanup()

    def _receive(self) -> None:
        while not self._closed.is_set():
            try:
                entry = parse_journal(self._sock.recv(65536))
            except TimeoutError:
                continue
            with self._lock:
                self._entries.append(entry)

    def entries(self, **match: str) -> list[dict[str, str]]:
        """The entries so far whose fields equal ``match`` (e.g. ``FAILURE="disk-full"``)."""
        with self._lock:
            return [e for e in self._entries if all(e.get(k) == v for k, v in match.items())]

    def messages(self, **match: str) -> list[str]:
        return [e["MESSAGE"] for e in self.entries(**match)]
