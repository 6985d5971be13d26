"""Who is signed in to the UI: Flask-Login over the ``users`` table, and the role checks.

The session stores the user id together with a fingerprint of the password hash, so changing a
password (or an admin resetting it) signs out every other session of that user at their next
request, without a server-side session store. Roles are those of ``central.auth``
(viewer < operator < admin), and every query in the UI is scoped to ``current_user.tenant_id``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any, ParamSpec, TypeVar, cast

import psycopg
from flask import abort
from flask_login import (  # type: ignore[import-untyped]  # no type information shipped
    LoginManager,
    current_user,
)
from flask_login import login_required as _login_required  # type: ignore[import-untyped]
from flask_login import login_user as _login_user  # type: ignore[import-untyped]
from flask_login import logout_user as _logout_user  # type: ignore[import-untyped]

from central.auth import RANK
from central.database import pool
from central.sites import verify_password

P = ParamSpec("P")
R = TypeVar("R")

login_manager = LoginManager()
login_manager.login_view = "ui.login"
login_manager.login_message = "Sign in to continue."
login_manager.login_message_category = "info"
login_manager.session_protection = "basic"

USER_SQL = """SELECT u.id, u.email, u.tenant_id, t.name, u.role, u.password_hash
              FROM users u JOIN tenants t ON t.id = u.tenant_id WHERE u.active AND """


@dataclass(frozen=True, slots=True)
class UiUser:
    """The signed-in operator (Flask-Login's user object)."""

    user_id: int
    email: str
    tenant_id: int
    tenant_name: str
    role: str
    fingerprint: str

    is_authenticated = True
    is_active = True
    is_anonymous = False

    def get_id(self) -> str:
        return f"{self.user_id}.{self.fingerprint}"

    @property
    def actor(self) -> str:
        """How the audit log names this user (the same as the operator API)."""
        return f"user:{self.email}"

    def can(self, role: str) -> bool:
        return RANK[self.role] >= RANK[role]


def _fingerprint(password_hash: str) -> str:
    return hashlib.sha256(password_hash.encode()).hexdigest()[:16]


def _user(row: Any) -> UiUser:
    return UiUser(row[0], row[1], row[2], row[3], row[4], _fingerprint(row[5]))


def login_required(view: Callable[P, R]) -> Callable[P, R]:
    """Flask-Login's decorator, typed (the package has no type information)."""
    return cast(Callable[P, R], _login_required(view))


def login_user(user: UiUser) -> None:
    _login_user(user)


def logout_user() -> None:
    _logout_user()


def load_user(session_id: str) -> UiUser | None:
    user_id, _, fingerprint = session_id.partition(".")
    if not user_id.isdigit():
        return None
    with pool().connection() as conn:
        row = conn.execute(USER_SQL + "u.id = %s", (int(user_id),)).fetchone()
    if row is None:
        return None
    user = _user(row)
    return user if user.fingerprint == fingerprint else None


login_manager.user_loader(load_user)


def authenticate(conn: psycopg.Connection[Any], email: str, password: str) -> UiUser | None:
    row = conn.execute(USER_SQL + "u.email = %s", (email.strip().lower(),)).fetchone()
    if row is None or not verify_password(row[5], password):
        return None
    return _user(row)


def me() -> UiUser:
    """The signed-in user, typed (views using it are behind ``login_required``)."""
    return cast(UiUser, current_user._get_current_object())


def require(role: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Sign-in required, and at least ``role``; a lesser role gets 403 (it can see the site)."""

    def decorate(view: Callable[P, R]) -> Callable[P, R]:
        @wraps(view)
        def wrapped(*args: P.args, **kwargs: P.kwargs) -> R:
            if not me().can(role):
                abort(403, f"This needs the {role} role; you are signed in as {me().role}.")
            return view(*args, **kwargs)

        return cast(Callable[P, R], login_required(wrapped))

    return decorate


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
