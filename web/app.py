"""The local web UI's Flask application factory (served by gunicorn: ``web/gunicorn.conf.py``)."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from flask import Flask

from appliance.settings import ApplianceSettings, load_settings
from common import http_headers
from web import api, appliance_info, auth, health, metrics, pages, password
from web.database import new_pool
from web.jsonprovider import OrjsonProvider
from web.secret_key import persistent_secret_key

logger = logging.getLogger(__name__)


def settings_config(settings: ApplianceSettings) -> dict[str, Any]:
    """Flask config from the typed settings: views read ``app.config``, never the environment."""
    return {
        "APPLIANCE_SETTINGS": settings,
        "DATABASE_URL": settings.database_url,
        "PASSWORD_HASH_FILE": settings.web_password_hash_file,
        "SESSION_COOKIE_NAME": "meterit_session",
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": settings.web_cookie_secure,
        "PERMANENT_SESSION_LIFETIME": timedelta(hours=settings.web_session_hours),
        # Set the cookie only when the session changes: a page's poll answered after a logout
        # would otherwise put the pre-logout cookie back and swallow the "Logged out." message.
        # The session's lifetime is kept on the server (web_sessions), so nothing slides here.
        "SESSION_REFRESH_EACH_REQUEST": False,
        # the guard decides which requests need the token (Basic-auth scripts do not)
        "WTF_CSRF_CHECK_DEFAULT": False,
        # bound to the session instead: a dashboard left open all shift keeps working buttons
        "WTF_CSRF_TIME_LIMIT": None,
        "DB_POOL_SIZE": 4,
        "POLL_INTERVAL_MS": settings.web_refresh_s * 1000,
    }


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    app = Flask(__name__)
    app.json = OrjsonProvider(app)
    settings = (test_config or {}).get("APPLIANCE_SETTINGS") or load_settings()
    password.adopt_initial_password(settings)
    config = settings_config(settings)
    config["SECRET_KEY"] = persistent_secret_key(settings)
    config.update(test_config or {})
    app.config.update(config)

    http_headers.init_app(app)  # first: it must see the limiter's headers
    new_pool().init_app(app)
    auth.init_app(app)
    app.register_blueprint(health.bp)
    app.register_blueprint(metrics.bp)
    app.register_blueprint(pages.bp)
    app.register_blueprint(api.bp)
    pages.init_app(app)
    appliance_info.init_app(app)
    return app
