"""A real HTTP front in front of central whose clock is off: it forwards every request to
central unchanged and answers with central's status, headers and body, but with its own
``Date``, ``shift_s`` seconds away from the true time (set it at any moment; 0 puts it right).

It stands in for a central host whose clock is wrong, which cannot be arranged for the gunicorn
under test without changing the machine's clock."""

from __future__ import annotations

import http.client
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

# set by the front itself, or meaningless once the body is passed through unchanged
_NOT_COPIED = {"date", "server", "connection", "transfer-encoding", "keep-alive"}


class DateShiftingFront:
    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.shift_s = 0.0
        front = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as central's gunicorn

            def date_time_string(self, timestamp: float | None = None) -> str:
                return super().date_time_string(time.time() + front.shift_s)

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {k: v for k, v in self.headers.items() if k.lower() != "connection"}
                conn = http.client.HTTPConnection(*front.upstream, timeout=60)
                try:
                    conn.request(self.command, self.path, body=body, headers=headers)
                    answer = conn.getresponse()
                    data = answer.read()  # as sent: gzip stays gzip
                finally:
                    conn.close()
                self.send_response(answer.status)  # adds the shifted Date
                for name, value in answer.getheaders():
                    if name.lower() not in _NOT_COPIED and name.lower() != "content-length":
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = _forward

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
