"""The central Flask application factory (served by gunicorn: ``central/gunicorn.conf.py``)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from flask import Flask, Response, g, request
from werkzeug.middleware.proxy_fix import ProxyFix

from central import errors, metrics
from central.database import init_request_connections, new_pool, new_read_pool
from central.extensions import limiter, limiter_storage_uri
from central.settings import CentralSettings, load_settings
from common import attempts, http_headers

OPENAPI = Path(__file__).with_name("openapi.json")


def settings_config(settings: CentralSettings) -> dict[str, Any]:
    """Flask config from the typed settings: the app reads only ``app.config``."""
    return {
        "DATABASE_URL": settings.database_url,
        "READ_DATABASE_URL": settings.read_database_url,
        "REDIS_URL": settings.redis_url,
        "SECRET_KEY": settings.secret_key or None,
        "RATE_LIMIT": settings.rate_limit,
        "SYNC_READINGS_PER_MINUTE": settings.sync_readings_per_minute,
        "RATELIMIT_STORAGE_URI": limiter_storage_uri(settings.redis_url),
        "MAX_BATCH_BYTES": settings.max_batch_bytes,
        "MAX_BATCH_READINGS": settings.max_batch_readings,
        "ACCEPT_PAST_DAYS": settings.accept_past_days,
        "ACCEPT_FUTURE_HOURS": settings.accept_future_hours,
        # werkzeug refuses a larger Content-Length before reading; gzip is never larger than its
        # input. One byte more than the cap: a chunked body (no Content-Length) is read up to
        # this and then stops silently, so ``central.body`` needs to see that extra byte to
        # answer 413 instead of parsing a cut body.
        "MAX_CONTENT_LENGTH": settings.max_batch_bytes + 1,
        "KEY_OVERLAP_HOURS": settings.key_overlap_hours,
        "OPERATOR_TOKEN_HOURS": settings.operator_token_hours,
        "HEARTBEAT_LATE_S": settings.heartbeat_late_s,
        "HEARTBEAT_OFFLINE_S": settings.heartbeat_offline_s,
        "METRICS_ALLOW_FROM": settings.metrics_allow_from,
        "METRICS_TOKEN": settings.metrics_token,
        "TRUSTED_PROXIES": settings.trusted_proxies,
        "PUBLIC_URL": settings.public_url,
        "MCP_BIND": settings.mcp_bind,
        # Flask holds SESSION_COOKIE_SAMESITE already (None), so the UI cannot setdefault it
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SECURE": settings.session_cookie_secure,
        "UI_SESSION_HOURS": settings.ui_session_hours,
        # one connection per gunicorn thread, plus one for /health-free housekeeping
        "DB_POOL_SIZE": settings.gunicorn_threads + 1,
        "JSON_SORT_KEYS": False,
    }


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """The central app. Served (``test_config`` None), it is built from the settings
    (environment, config file). Otherwise from ``test_config`` only, never the environment:
    ``CENTRAL_SETTINGS`` (a ``CentralSettings``; its defaults when absent), then any Flask
    config keys of ``test_config`` over it — so a test gets exactly what it passed."""
    app = Flask(__name__)
    if test_config is None:
        config = settings_config(load_settings())
    else:
        config = settings_config(test_config.get("CENTRAL_SETTINGS") or CentralSettings())
        config.update(test_config)
    app.config.update(config)
    if not app.config["SECRET_KEY"]:
        import secrets

        app.config["SECRET_KEY"] = secrets.token_hex(32)
    app.json.sort_keys = False  # type: ignore[attr-defined]
    proxies = int(app.config["TRUSTED_PROXIES"])
    if proxies:
        # the client address, scheme and host as the proxy saw them; never believed otherwise,
        # since any client can send X-Forwarded-For
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=proxies, x_proto=proxies, x_host=proxies
        )

    http_headers.init_app(app)  # first: it must see the limiter's headers
    new_pool().init_app(app)  # one per app: its DATABASE_URL, not a process-wide one
    init_request_connections(app)
    if app.config.get("READ_DATABASE_URL"):
        new_read_pool().init_app(app)
    limiter.init_app(app)
    attempts.init_app(app, app.config["RATELIMIT_STORAGE_URI"])
    errors.init_app(app)

    from central import alerts_api, health, operator_api, reports_api, sync_api, ui

    app.register_blueprint(health.bp)
    app.register_blueprint(sync_api.bp)
    app.register_blueprint(operator_api.bp)
    app.register_blueprint(alerts_api.bp)
    app.register_blueprint(reports_api.bp)
    app.register_blueprint(ui.bp)  # operator UI; sets up its sessions and CSRF itself

    @app.get("/api/v1/openapi.json")
    def openapi() -> Response:
        return Response(OPENAPI.read_bytes(), content_type="application/json")

    @app.before_request
    def _start_timer() -> None:
        g.started = time.perf_counter()

    @app.after_request
    def _observe(response: Response) -> Response:
        started = g.get("started")
        if started is not None:
            metrics.REQUEST_SECONDS.labels(
                request.endpoint or "unknown", f"{response.status_code // 100}xx"
            ).observe(time.perf_counter() - started)
        return response

    return app


def openapi_document() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(OPENAPI.read_text())
    return doc
