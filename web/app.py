"""The local web UI's Flask application factory (served by gunicorn: ``web/gunicorn.conf.py``)."""

from __future__ import annotations

import logging
import os
import secrets
from datetime import timedelta
from pathlib import Path
from typing import Any

from flask import Flask

from appliance.settings import ApplianceSettings, load_settings
from web import api, auth, health, pages, password
from web.database import new_pool
from web.jsonprovider import OrjsonProvider

logger = logging.getLogger(__name__)

SECRET_KEY_NAME = "web-secret-key"


def persistent_secret_key(settings: ApplianceSettings) -> str:
    """``web_secret_key``, or one generated once and kept next to the password hash: every
    gunicorn worker and every restart must sign sessions with the same key, or logins vanish."""
    if settings.web_secret_key:
        return settings.web_secret_key
    path = Path(settings.web_password_hash_file).with_name(SECRET_KEY_NAME)
    try:
        existing = path.read_text(encoding="utf-8").strip()
        if existing:
            return existing
    except FileNotFoundError:
        pass
    key = secrets.token_hex(32)
    tmp = path.with_name(f".{SECRET_KEY_NAME}.{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(key + "\n")
        # link() creates the name only if absent, with the content already complete: when
        # gunicorn workers race, they all end up with the first one's key
        os.link(tmp, path)
    except FileExistsError:
        return path.read_text(encoding="utf-8").strip()
    except OSError as err:
        logger.warning(
            "cannot keep the session key in %s (%s): logins end when the UI restarts; "
            "set METERIT_WEB_SECRET_KEY",
            path,
            err,
        )
    finally:
        tmp.unlink(missing_ok=True)
    return key


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

    new_pool().init_app(app)
    auth.init_app(app)
    app.register_blueprint(health.bp)
    app.register_blueprint(pages.bp)
    app.register_blueprint(api.bp)
    pages.init_app(app)
    return app
