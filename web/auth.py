"""Login, logout, and the guard in front of every page and JSON endpoint but ``/health`` and
``/metrics``.

Browsers log in with the form and get a signed session cookie (HttpOnly, SameSite=Lax, Secure
when configured); every state-changing request from a session must carry the CSRF token (form
field, or ``X-CSRFToken`` header from the page's JavaScript). Scripts may instead send HTTP
Basic credentials on ``/api/local/*``: no cookie is involved, so there is nothing to forge.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from flask import (
    Blueprint,
    Flask,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_wtf.csrf import CSRFError, CSRFProtect  # type: ignore[import-untyped]
from werkzeug.wrappers.response import Response

from common import attempts
from common.attempts import TooManyAttempts, guarded, redis_storage_uri
from common.redirects import local_path
from common.sessions import SessionStore
from web import password
from web.database import connection

logger = logging.getLogger(__name__)

bp = Blueprint("auth", __name__)
csrf = CSRFProtect()
# per worker and in memory: enough to make guessing slow without another moving part
limiter = Limiter(key_func=get_remote_address, storage_uri="memory://", default_limits=[])

SESSIONS = SessionStore("web_sessions", with_user=False)

# /metrics checks its own address list and token (web/metrics.py)
PUBLIC_ENDPOINTS = {"auth.login", "health.health", "metrics.prometheus", "static"}
UNSAFE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


def _hash_path() -> Path:
    return Path(current_app.config["PASSWORD_HASH_FILE"])


def _is_api() -> bool:
    return request.path.startswith("/api/")


def _verify(user: str, given: str) -> bool:
    """The password check behind the limiter (``common.attempts``): TooManyAttempts once the
    account or the client address has used its budget of failures."""
    return bool(
        guarded("password", user, lambda: password.verify(_hash_path(), user, given) or None)
    )


def _basic_auth_ok() -> bool:
    auth = request.authorization
    if auth is None or auth.type != "basic" or not _is_api():
        return False
    ok = _verify(auth.username or "", auth.password or "")
    if not ok:
        logger.warning("API login with a wrong password from %s", request.remote_addr)
    return ok


def _session_ok() -> bool:
    if session.get("user") != password.USERNAME or not session.get("sid"):
        return False
    if session.get("pw") != password.fingerprint(_hash_path()):
        return False
    with connection() as conn:  # logged out on the server: a copied cookie is worth nothing
        return SESSIONS.alive(conn, str(session["sid"]))


def _start_session() -> None:
    session.clear()  # a new session: nothing from before the login carries over
    session.permanent = True
    session["user"] = password.USERNAME
    session["pw"] = password.fingerprint(_hash_path())
    with connection() as conn:
        session["sid"] = SESSIONS.start(conn, current_app.permanent_session_lifetime)


def guard() -> Any:
    """Runs before every request: who is asking, and is a state change forged?"""
    g.basic_auth = False
    if request.endpoint in PUBLIC_ENDPOINTS:
        if request.method in UNSAFE_METHODS:
            csrf.protect()
        return None
    if _session_ok():
        if request.method in UNSAFE_METHODS:
            csrf.protect()
        return None
    if _basic_auth_ok():
        g.basic_auth = True
        return None
    if _is_api():
        return {"error": "log in first (or send HTTP Basic credentials for user 'admin')"}, 401
    return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))


def _safe_next(target: str | None) -> str:
    """Only a path on this site: never bounce a fresh login to another host."""
    return local_path(target) or url_for("pages.dashboard")


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit("10/minute", methods=["POST"])
def login() -> Any:
    if request.method == "GET":
        return render_template("login.html", next=request.args.get("next", ""))
    given = request.form.get("password", "")
    if not _verify(password.USERNAME, given):
        logger.warning("local UI login with a wrong password from %s", request.remote_addr)
        flash("Wrong password.", "error")
        return render_template("login.html", next=request.form.get("next", "")), 401
    _start_session()
    logger.info("local UI login from %s", request.remote_addr)
    return redirect(_safe_next(request.form.get("next")))


@bp.route("/password", methods=["GET", "POST"])
@limiter.limit("10/minute", methods=["POST"])
def change_password() -> Any:
    """Replace the first-boot or provisioning password; every other session ends with it."""
    if request.method == "GET":
        return render_template("password.html")
    current = request.form.get("current", "")
    new, repeat = request.form.get("new", ""), request.form.get("repeat", "")
    problem = None
    if not _verify(password.USERNAME, current):
        problem = "The current password is wrong."
    elif new != repeat:
        problem = "The two new passwords differ."
    elif len(new) < password.MIN_LENGTH:
        problem = f"The new password needs at least {password.MIN_LENGTH} characters."
    if problem:
        flash(problem, "error")
        return render_template("password.html"), 400
    try:
        password.set_password(_hash_path(), new)
    except OSError as err:
        logger.error("cannot store the new web UI password in %s: %s", _hash_path(), err)
        flash(f"Cannot store the new password: {err.strerror}.", "error")
        return render_template("password.html"), 500
    session["pw"] = password.fingerprint(_hash_path())  # this session stays, the others end
    with connection() as conn:
        SESSIONS.end_others(conn, str(session.get("sid") or ""))
    flash("Password changed. Other open sessions are logged out.", "info")
    return redirect(url_for("pages.dashboard"))


@bp.post("/logout")
def logout() -> Response:
    if session.get("sid"):
        with connection() as conn:
            SESSIONS.end(conn, str(session["sid"]))
    session.clear()
    flash("Logged out.", "info")
    return redirect(url_for("auth.login"))


def _csrf_refused(err: CSRFError) -> Any:
    logger.warning("refused %s %s: %s", request.method, request.path, err.description)
    if _is_api():
        return {"error": f"CSRF check failed: {err.description}"}, 400
    return render_template("error.html", title="Request refused", message=err.description), 400


def _too_many(_: Any) -> Any:
    if _is_api():
        return {"error": "too many login attempts; wait a minute"}, 429
    flash("Too many login attempts; wait a minute and try again.", "error")
    return render_template("login.html", next=""), 429


def _too_many_failures(err: TooManyAttempts) -> Any:
    headers = {"Retry-After": str(err.retry_after)}
    if _is_api():
        return {"error": f"{err}; failures count per account and per address"}, 429, headers
    flash(f"Too many wrong passwords; try again in {err.retry_after} s.", "error")
    return render_template("login.html", next=""), 429, headers


def init_app(app: Flask) -> None:
    csrf.init_app(app)
    limiter.init_app(app)
    app.before_request(guard)
    app.register_error_handler(CSRFError, _csrf_refused)
    app.register_error_handler(429, _too_many)
    app.register_error_handler(TooManyAttempts, _too_many_failures)
    settings = app.config["APPLIANCE_SETTINGS"]
    attempts.init_app(app, redis_storage_uri(settings.redis_url))
    app.register_blueprint(bp)
