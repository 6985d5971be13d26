"""A real TCP proxy in front of central, to make the network fail in exact ways.

Modes (``proxy.mode = ...``, effective for new connections):

- ``pass``: bytes flow both ways;
- ``hold``: the client's request is read and never forwarded (central never sees it);
- ``blackhole``: the request is forwarded, central's answer is swallowed and the client's
  connection held open (central committed, the appliance never hears back);
- ``reset``: every connection is closed at once (central "down");
- ``delay``: like pass, but central's answer waits ``delay_s`` seconds.

``cut()`` also breaks the connections already open (a server gone away, not only refusing).

``forwarded`` counts requests handed to central; ``swallowed`` answers dropped; ``refused``
connections closed at once in ``reset`` mode.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time


class TcpProxy:
    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.mode = "pass"
        self.delay_s = 1.0
        self.forwarded = 0
        self.swallowed = 0
        self.refused = 0
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self.port = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._stopped = threading.Event()
        self._held: list[socket.socket] = []
        self._live: set[socket.socket] = set()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client, self.mode), daemon=True).start()

    def _serve(self, client: socket.socket, mode: str) -> None:
        if mode == "reset":
            self.refused += 1
            client.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
            )
            client.close()
            return
        if mode == "hold":
            self._held.append(client)
            return
        try:
            upstream = socket.create_connection(self.upstream, timeout=30)
        except OSError:
            client.close()
            return
        done = threading.Event()
        self._live.update((client, upstream))

        def pump(src: socket.socket, dst: socket.socket | None, answer: bool) -> None:
            first = True
            try:
                while True:
                    data = src.recv(65536)
                    if not data:
                        break
                    if not answer and first:
                        self.forwarded += 1
                    if answer and first and mode == "delay":
                        time.sleep(self.delay_s)
                    first = False
                    if dst is None:
                        if answer:
                            self.swallowed += 1
                        continue
                    dst.sendall(data)
            except OSError:
                pass
            finally:
                done.set()

        threading.Thread(target=pump, args=(client, upstream, False), daemon=True).start()
        if mode == "blackhole":
            self._held.append(client)
            pump(upstream, None, True)
            return
        pump(upstream, client, True)
        for s in (client, upstream):
            self._live.discard(s)
            with contextlib.suppress(OSError):
                s.close()

    def cut(self) -> None:
        """Refuse new connections and break every open one."""
        self.mode = "reset"
        for s in list(self._live):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def release_held(self) -> None:
        """Close every held client connection (the appliance then sees a reset)."""
        while self._held:
            with contextlib.suppress(OSError):
                self._held.pop().close()

    def close(self) -> None:
        self._stopped.set()
        self.release_held()
        self._listener.close()
