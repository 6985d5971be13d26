"""Operator users: roles, password hashing (argon2id), creating users and checking passwords.

Every user belongs to one tenant and sees only its sites. Roles are ordered
viewer < operator < admin. The faces (operator API tokens in ``central.auth``, UI sessions in
``central.ui.users``) sign users in through ``check_password`` here.
"""

from __future__ import annotations

import functools
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from argon2 import PasswordHasher
from psycopg.rows import class_row

from central import audit
from central.domain_errors import Conflict, NotFound

ROLES = ("admin", "operator", "viewer")
RANK = {"viewer": 0, "operator": 1, "admin": 2}
MIN_PASSWORD = 8

_hasher = PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    """A hash with the current parameters that no password matches: an unknown e-mail is
    verified against it, so it costs what a known one does and timing tells nothing."""
    return _hasher.hash(secrets.token_urlsafe(16))


@dataclass(frozen=True, slots=True)
class User:
    """An active user as the sign-in checks read it."""

    id: int
    email: str
    tenant_id: int
    tenant_name: str
    role: str
    password_hash: str


def can(role: str, needed: str) -> bool:
    """Whether ``role`` includes what ``needed`` may do."""
    return RANK[role] >= RANK[needed]


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return bool(_hasher.verify(password_hash, password))
    except Exception:  # argon2 raises VerifyMismatchError / InvalidHashError
        return False


_USER_SQL = """SELECT u.id, u.email, u.tenant_id, t.name AS tenant_name, u.role, u.password_hash
               FROM users u JOIN tenants t ON t.id = u.tenant_id WHERE u.active AND """


def active_user(conn: psycopg.Connection[Any], user_id: int) -> User | None:
    with conn.cursor(row_factory=class_row(User)) as cur:
        return cur.execute(_USER_SQL + "u.id = %s", (user_id,)).fetchone()


def check_password(conn: psycopg.Connection[Any], email: str, password: str) -> User | None:
    """The active user with this e-mail and password, else None (whichever of them is wrong)."""
    with conn.cursor(row_factory=class_row(User)) as cur:
        user = cur.execute(_USER_SQL + "u.email = %s", (email.strip().lower(),)).fetchone()
    if user is None:
        verify_password(_dummy_hash(), password)  # the same work as for a known e-mail
        return None
    if not verify_password(user.password_hash, password):
        return None
    return user


def create_user(
    conn: psycopg.Connection[Any],
    tenant_id: int,
    *,
    email: str,
    password: str,
    role: str,
    actor: str,
) -> int:
    if role not in ROLES:
        raise ValueError(f"role {role!r}: expected one of {', '.join(ROLES)}")
    if len(password) < MIN_PASSWORD:
        raise ValueError(f"password: use at least {MIN_PASSWORD} characters")
    row = conn.execute(
        """INSERT INTO users (tenant_id, email, password_hash, role) VALUES (%s, %s, %s, %s)
           ON CONFLICT (email) DO NOTHING RETURNING id""",
        (tenant_id, email.strip().lower(), hash_password(password), role),
    ).fetchone()
    if row is None:
        raise Conflict(f"a user with e-mail {email!r} already exists")
    audit.record(
        conn,
        tenant_id,
        actor,
        "user.create",
        ("user", row[0]),
        details={"email": email, "role": role},
    )
    return int(row[0])


def change_password(
    conn: psycopg.Connection[Any], user_id: int, tenant_id: int, password: str, actor: str
) -> None:
    """Store a new argon2 hash. Other UI sessions of the user end at their next request (their
    fingerprint of the old hash no longer matches, see ``central.ui.users``)."""
    conn.execute(
        "UPDATE users SET password_hash = %s WHERE id = %s", (hash_password(password), user_id)
    )
    audit.record(conn, tenant_id, actor, "user.password_change", ("user", user_id))


# -- administering the users of a tenant (the operator UI's accounts page) ---------------------


@dataclass(frozen=True, slots=True)
class Account:
    """A user as an admin of the tenant sees it (never the password hash)."""

    id: int
    email: str
    role: str
    active: bool
    created_at: datetime


def list_accounts(conn: psycopg.Connection[Any], tenant_id: int) -> list[Account]:
    with conn.cursor(row_factory=class_row(Account)) as cur:
        return cur.execute(
            """SELECT id, email, role, active, created_at FROM users
               WHERE tenant_id = %s ORDER BY active DESC, email""",
            (tenant_id,),
        ).fetchall()


def _account(conn: psycopg.Connection[Any], tenant_id: int, user_id: int) -> Account:
    """The tenant's user, locked for the change; NotFound for another tenant's (no hint)."""
    with conn.cursor(row_factory=class_row(Account)) as cur:
        found = cur.execute(
            """SELECT id, email, role, active, created_at FROM users
               WHERE id = %s AND tenant_id = %s FOR UPDATE""",
            (user_id, tenant_id),
        ).fetchone()
    if found is None:
        raise NotFound(f"no user with id {user_id} in this organisation")
    return found


def _end_sign_ins(conn: psycopg.Connection[Any], user_id: int) -> None:
    """Every UI session and API token of the user stops working at once."""
    conn.execute("DELETE FROM ui_sessions WHERE user_id = %s", (user_id,))
    conn.execute("DELETE FROM operator_tokens WHERE user_id = %s", (user_id,))


def set_role(
    conn: psycopg.Connection[Any], tenant_id: int, user_id: int, role: str, actor: str
) -> None:
    if role not in ROLES:
        raise ValueError(f"role {role!r}: expected one of {', '.join(ROLES)}")
    account = _account(conn, tenant_id, user_id)
    if account.role == role:
        return
    conn.execute("UPDATE users SET role = %s WHERE id = %s", (role, user_id))
    audit.record(
        conn,
        tenant_id,
        actor,
        "user.role_change",
        ("user", user_id),
        details={"email": account.email, "from": account.role, "to": role},
    )


def set_active(
    conn: psycopg.Connection[Any], tenant_id: int, user_id: int, active: bool, actor: str
) -> None:
    """Deactivate (signed out everywhere, refused from then on) or reactivate a user."""
    account = _account(conn, tenant_id, user_id)
    if account.active == active:
        return
    conn.execute("UPDATE users SET active = %s WHERE id = %s", (active, user_id))
    if not active:
        _end_sign_ins(conn, user_id)
    audit.record(
        conn,
        tenant_id,
        actor,
        "user.reactivate" if active else "user.deactivate",
        ("user", user_id),
        details={"email": account.email},
    )


def reset_password(conn: psycopg.Connection[Any], tenant_id: int, user_id: int, actor: str) -> str:
    """A new random password for the user (shown once to the admin); the user's sessions and
    tokens end. Only its use is audited, never the password."""
    account = _account(conn, tenant_id, user_id)
    password = secrets.token_urlsafe(12)
    conn.execute(
        "UPDATE users SET password_hash = %s WHERE id = %s", (hash_password(password), user_id)
    )
    _end_sign_ins(conn, user_id)
    audit.record(
        conn,
        tenant_id,
        actor,
        "user.password_reset",
        ("user", user_id),
        details={"email": account.email},
    )
    return password
