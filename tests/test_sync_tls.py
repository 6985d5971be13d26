"""Certificate verification is always on: a central with a certificate the appliance cannot
verify is refused, and the CA file named by METERIT_CA_BUNDLE makes it trusted.

Central runs plain HTTP behind a TLS terminator in production; here a real TLS HTTP server
(Python's ``ssl`` over ``http.server``) stands in for that terminator."""

from __future__ import annotations

import ssl
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest

from appliance.sync import failures
from appliance.sync.central import CentralClient, CentralError
from common.heartbeat import Heartbeat
from tests.certs import self_signed
from tests.sync_helpers import CentralStandIn, edge_settings, with_settings

HEARTBEAT = Heartbeat(
    sent_at=datetime(2026, 11, 23, 10, tzinfo=UTC),
    versions={"meterit": "0.1.0"},
    backlog=0,
    oldest_unsynced_age_s=None,
    dropped_readings=0,
    collection_paused=False,
    upload_paused=False,
    meters=(),
)


class _Ok(CentralStandIn):
    def do_POST(self) -> None:
        self.reply_json(200, {"received_at": "2026-11-23T10:00:00Z"})


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    cert, key = self_signed(tmp_path, days=1, name="central")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"https://127.0.0.1:{server.server_port}", cert
    finally:
        server.shutdown()


def test_unverifiable_certificate_is_refused(tls_server, edge_db_url: str, redis_url: str) -> None:
    url, _ = tls_server
    settings = with_settings(edge_settings(edge_db_url, redis_url, url, None), api_key="k")
    with CentralClient(settings, retries=0) as client, pytest.raises(CentralError) as err:
        client.post_heartbeat(HEARTBEAT)
    assert err.value.mode is failures.TLS
    assert "CERTIFICATE_VERIFY_FAILED" in str(err.value) and "METERIT_CA_BUNDLE" in str(err.value)


def test_ca_bundle_makes_central_trusted(tls_server, edge_db_url: str, redis_url: str) -> None:
    url, cert = tls_server
    settings = with_settings(
        edge_settings(edge_db_url, redis_url, url, None), api_key="k", ca_bundle=str(cert)
    )
    with CentralClient(settings, retries=0) as client:
        assert client.post_heartbeat(HEARTBEAT).status == 200
