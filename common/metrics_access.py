"""Who may read a ``/metrics`` endpoint (central's and the appliance's local UI's).

Closed by default: it opens to the addresses of ``metrics_allow_from`` and to a client sending
``metrics_token`` as a bearer token. The token is compared in constant time behind the common
limiter (``common.attempts``, scope "metrics-token"), so it cannot be guessed faster than a
password. The two settings are declared in ``common.metrics_settings``.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from ipaddress import ip_address

from flask import request

from common.attempts import guarded
from common.metrics_settings import networks

SCOPE = "metrics-token"


@dataclass(frozen=True)
class Refusal:
    status: int  # 401: a token would open it; 403: nothing this client sends would
    message: str


OFF = Refusal(
    403,
    "/metrics is off; open it with METERIT_METRICS_ALLOW_FROM (addresses or networks) "
    "or METERIT_METRICS_TOKEN (a bearer token)",
)
NOT_ALLOWED = Refusal(
    403,
    "/metrics is not open to this client; allow its address with METERIT_METRICS_ALLOW_FROM "
    "or send the METERIT_METRICS_TOKEN as a bearer token",
)
TOKEN_NEEDED = Refusal(
    401,
    "/metrics needs the METERIT_METRICS_TOKEN as 'Authorization: Bearer …' from this address",
)
WRONG_TOKEN = Refusal(401, "/metrics: wrong bearer token")


def refusal(allow_from: str, token: str | None) -> Refusal | None:
    """None when the current request may read /metrics, else why not. Raises
    ``TooManyAttempts`` once this address has sent too many wrong tokens (or other secrets)."""
    header = request.headers.get("Authorization", "")
    if token and header.lower().startswith("bearer "):
        given = header[len("bearer ") :].strip()
        ok = guarded(
            SCOPE, None, lambda: hmac.compare_digest(given.encode(), token.encode()) or None
        )
        return None if ok else WRONG_TOKEN
    try:
        client = ip_address(request.remote_addr or "")
    except ValueError:
        client = None
    allowed = networks(allow_from)
    if client is not None and any(client in network for network in allowed):
        return None
    if token:
        return TOKEN_NEEDED
    return NOT_ALLOWED if allowed else OFF
