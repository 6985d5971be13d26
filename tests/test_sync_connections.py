"""How the upload uses HTTP connections to central.

Central's gunicorn workers are processes, and a kept-alive connection stays with the one that
accepted it: the upload's batches in flight then all landed on one process (one GIL) while
another idled. Each readings batch therefore goes on a connection of its own."""

from __future__ import annotations

import threading
from http.server import ThreadingHTTPServer

from appliance.sync.central import CentralClient
from common import wire
from tests.sync_helpers import CentralStandIn, edge_settings, with_settings


class _KeepAlive(CentralStandIn):
    """Answers as central does and would keep the connection open (HTTP/1.1) if asked to."""

    protocol_version = "HTTP/1.1"
    ports: list[int] = []

    def do_POST(self) -> None:
        _KeepAlive.ports.append(self.client_address[1])
        self.reply_json(200, {"accepted": 0, "duplicates": 0, "rejected": []})


def test_each_readings_batch_goes_on_a_new_connection(edge_db_url: str, redis_url: str) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _KeepAlive)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _KeepAlive.ports = []
    url = f"http://127.0.0.1:{server.server_port}"
    settings = with_settings(edge_settings(edge_db_url, redis_url, url, None), api_key="k")
    try:
        with CentralClient(settings) as client:
            for key in ("b1", "b2", "b3"):
                client.post_readings(wire.encode_batch([]), key)
    finally:
        server.shutdown()
    assert len(_KeepAlive.ports) == 3
    assert len(set(_KeepAlive.ports)) == 3, "a batch reused a kept-alive connection"
