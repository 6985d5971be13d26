"""Who is signed in to the UI: Flask-Login over the ``users`` table, and the role checks.

The session stores the user id, a fingerprint of the password hash (changing a password, or
an admin resetting it, signs out every other session of that user at their next request) and a
server-side session id (``ui_sessions``, ``common.sessions``): signing out deletes it, so a copy
of the cookie taken before stops working too. Roles are those of ``central.users``
(viewer < operator < admin), checked by ``central.access.require``, and every query in the UI
is scoped to ``current_user.tenant_id``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any, cast

import psycopg
from flask import abort, current_app
from flask_login import (  # type: ignore[import-untyped]  # no type information shipped
    LoginManager,
    current_user,
)
from flask_login import login_user as _login_user  # type: ignore[import-untyped]
from flask_login import logout_user as _logout_user  # type: ignore[import-untyped]

from central import users
from central.auth import PASSWORD_SCOPE
from central.database import pool
from common.attempts import guarded
from common.sessions import SessionStore

SESSIONS = SessionStore("ui_sessions", with_user=True)

login_manager = LoginManager()
login_manager.login_view = "ui.login"
login_manager.login_message = "Sign in to continue."
login_manager.login_message_category = "info"
login_manager.session_protection = "basic"


@dataclass(frozen=True, slots=True)
class UiUser:
    """The signed-in operator (Flask-Login's user object)."""

    user_id: int
    email: str
    tenant_id: int
    tenant_name: str
    role: str
    fingerprint: str
    session_id: str = ""

    is_authenticated = True
    is_active = True
    is_anonymous = False

    def get_id(self) -> str:
        return f"{self.user_id}.{self.fingerprint}.{self.session_id}"

    @property
    def actor(self) -> str:
        """How the audit log names this user (the same as the operator API)."""
        return f"user:{self.email}"

    def can(self, role: str) -> bool:
        return users.can(self.role, role)


def _fingerprint(password_hash: str) -> str:
    return hashlib.sha256(password_hash.encode()).hexdigest()[:16]


def _ui_user(user: users.User) -> UiUser:
    return UiUser(
        user.id,
        user.email,
        user.tenant_id,
        user.tenant_name,
        user.role,
        _fingerprint(user.password_hash),
    )


def login_user(user: UiUser) -> UiUser:
    """Start a server-side session for ``user`` and sign it in; the user with its session."""
    hours = float(current_app.config["UI_SESSION_HOURS"])
    with pool().connection() as conn:
        session_id = SESSIONS.start(conn, timedelta(hours=hours), user.user_id)
    user = replace(user, session_id=session_id)
    _login_user(user)
    return user


def logout_user() -> None:
    """End the signed-in session on the server too, then forget it in the cookie."""
    if current_user.is_authenticated:
        with pool().connection() as conn:
            SESSIONS.end(conn, me().session_id)
    _logout_user()


def load_user(cookie_id: str) -> UiUser | None:
    user_id, _, rest = cookie_id.partition(".")
    fingerprint, _, session_id = rest.partition(".")
    if not user_id.isdigit() or not session_id:
        return None
    with pool().connection() as conn:
        found = users.active_user(conn, int(user_id))
        if found is None or not SESSIONS.alive(conn, session_id, found.id):
            return None
    user = replace(_ui_user(found), session_id=session_id)
    return user if user.fingerprint == fingerprint else None


login_manager.user_loader(load_user)


def authenticate(conn: psycopg.Connection[Any], email: str, password: str) -> UiUser | None:
    """Behind the password limiter shared with the operator API (TooManyAttempts)."""
    user = guarded(PASSWORD_SCOPE, email, lambda: users.check_password(conn, email, password))
    return None if user is None else _ui_user(user)


def me() -> UiUser:
    """The signed-in user, typed (views using it are behind ``require``)."""
    return cast(UiUser, current_user._get_current_object())


def signed_in() -> UiUser:
    """Who calls a UI view (for ``central.access.require``); not signed in: off to the login
    page, as Flask-Login's ``login_required`` would send them."""
    if not current_user.is_authenticated:
        abort(login_manager.unauthorized())
    return me()


def format_age(seconds: Any) -> str:
    """A duration as people read it on a dashboard: 45 s, 12 min, 3 h 5 min, 2 d 4 h."""
    if seconds is None:
        return "—"
    s = int(float(seconds))
    if s < 90:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min"
    if s < 86400:
        return f"{s // 3600} h {s % 3600 // 60} min"
    return f"{s // 86400} d {s % 86400 // 3600} h"
