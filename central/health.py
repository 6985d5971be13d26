"""``/health`` for load balancers and monitoring, ``/metrics`` for Prometheus.

/health opens a fresh database connection rather than borrowing one from the pool: a pooled
connection can look fine while the server is gone, and the question asked is "could a new
request be served now?".
"""

from __future__ import annotations

import hmac
from ipaddress import ip_address

import redis
from flask import Blueprint, Response, current_app, jsonify, request

from central import metrics
from central.errors import ApiError
from central.settings import metrics_networks
from common.attempts import guarded
from common.db import connect

bp = Blueprint("health", __name__)

TIMEOUT_S = 2


def _database() -> str:
    try:
        with connect(current_app.config["DATABASE_URL"], connect_timeout=TIMEOUT_S) as conn:
            conn.execute("SELECT 1")
    except Exception as err:
        return f"unreachable: {str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__}"
    return "ok"


def _redis() -> str:
    try:
        client = redis.Redis.from_url(
            current_app.config["REDIS_URL"],
            socket_timeout=TIMEOUT_S,
            socket_connect_timeout=TIMEOUT_S,
        )
        try:
            client.ping()
        finally:
            client.close()
    except Exception as err:
        return f"unreachable: {err}"
    return "ok"


@bp.get("/health")
def health() -> Response:
    checks = {"database": _database(), "redis": _redis()}
    healthy = all(v == "ok" for v in checks.values())
    response = jsonify({"status": "ok" if healthy else "unavailable", "checks": checks})
    response.status_code = 200 if healthy else 503
    return response


def _may_read_metrics() -> bool:
    """Opt-in: an address of ``metrics_allow_from``, or the ``metrics_token``."""
    token = current_app.config.get("METRICS_TOKEN")
    header = request.headers.get("Authorization", "")
    if token and header.lower().startswith("bearer "):
        given = header[len("bearer ") :].strip()
        return bool(
            guarded(
                "metrics-token",
                None,
                lambda: hmac.compare_digest(given.encode(), str(token).encode()) or None,
            )
        )
    try:
        client = ip_address(request.remote_addr or "")
    except ValueError:
        return False
    networks = metrics_networks(str(current_app.config.get("METRICS_ALLOW_FROM") or ""))
    return any(client in network for network in networks)


@bp.get("/metrics")
def prometheus() -> Response:
    if not _may_read_metrics():
        raise ApiError(
            403,
            "/metrics is not open to this client; allow its address with "
            "METERIT_METRICS_ALLOW_FROM or send the METERIT_METRICS_TOKEN as a bearer token",
        )
    body, content_type = metrics.render()
    return Response(body, content_type=content_type)
