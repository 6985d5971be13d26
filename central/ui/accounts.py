"""The accounts page: an admin manages the users of their own tenant.

List, create, change a role, deactivate or reactivate, and reset a password (a new random
one, shown once). Every change goes through ``central.users`` and is audited there. An admin
cannot change their own role or deactivate themselves here, so a tenant never locks out its
last admin by a slip of the mouse (another admin, or the CLI, can).
"""

from __future__ import annotations

import logging

from flask import abort, flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from central import users
from central.access import require
from central.database import pool
from central.domain_errors import Conflict, NotFound
from central.ui import bp
from central.ui.users import me

logger = logging.getLogger(__name__)

MAX_EMAIL = 254


def _page(status: int = 200, **shown: object) -> tuple[str, int]:
    with pool().connection() as conn:
        accounts = users.list_accounts(conn, me().tenant_id)
    return render_template(
        "ui/accounts.html", accounts=accounts, roles=users.ROLES, **shown
    ), status


@bp.get("/accounts")
@require("admin")
def accounts() -> tuple[str, int]:
    return _page()


@bp.post("/accounts")
@require("admin")
def create_account() -> Response | tuple[str, int]:
    admin = me()
    email = request.form.get("email", "").strip()
    role = request.form.get("role", "")
    password = request.form.get("password", "")
    problem = None
    if not 3 <= len(email) <= MAX_EMAIL or "@" not in email or any(c.isspace() for c in email):
        problem = "Give the user's e-mail address."
    elif role not in users.ROLES:
        problem = f"Choose a role: {', '.join(users.ROLES)}."
    elif len(password) < users.MIN_PASSWORD:
        problem = f"Give a first password of at least {users.MIN_PASSWORD} characters."
    if problem is None:
        try:
            with pool().connection() as conn, conn.transaction():
                users.create_user(
                    conn,
                    admin.tenant_id,
                    email=email,
                    password=password,
                    role=role,
                    actor=admin.actor,
                )
        except Conflict:
            problem = f"A user with e-mail {email} already exists."
    if problem is not None:
        flash(problem, "error")
        return _page(400, form_email=email, form_role=role)
    logger.info("user %s (%s) created by %s", email, role, admin.email)
    flash(f"User {email} created as {role}.", "success")
    return redirect(url_for("ui.accounts"))


def _target(user_id: int) -> int:
    if user_id == me().user_id:
        abort(
            403,
            "Change your own account on the Account page; another admin can change "
            "your role or deactivate you.",
        )
    return user_id


@bp.post("/accounts/<int:user_id>/role")
@require("admin")
def change_role(user_id: int) -> Response:
    admin = me()
    role = request.form.get("role", "")
    if role not in users.ROLES:
        abort(400, f"Choose a role: {', '.join(users.ROLES)}.")
    try:
        with pool().connection() as conn, conn.transaction():
            users.set_role(conn, admin.tenant_id, _target(user_id), role, admin.actor)
    except NotFound:
        abort(404, f"There is no user with id {user_id} in your organisation.")
    flash(f"Role changed to {role}.", "success")
    return redirect(url_for("ui.accounts"))


@bp.post("/accounts/<int:user_id>/active")
@require("admin")
def change_active(user_id: int) -> Response:
    admin = me()
    active = request.form.get("active") == "true"
    try:
        with pool().connection() as conn, conn.transaction():
            users.set_active(conn, admin.tenant_id, _target(user_id), active, admin.actor)
    except NotFound:
        abort(404, f"There is no user with id {user_id} in your organisation.")
    flash(
        "User reactivated." if active else "User deactivated and signed out everywhere.",
        "success",
    )
    return redirect(url_for("ui.accounts"))


@bp.post("/accounts/<int:user_id>/password")
@require("admin")
def reset_password(user_id: int) -> tuple[str, int]:
    admin = me()
    try:
        with pool().connection() as conn, conn.transaction():
            password = users.reset_password(conn, admin.tenant_id, _target(user_id), admin.actor)
            email = next(
                a.email for a in users.list_accounts(conn, admin.tenant_id) if a.id == user_id
            )
    except NotFound:
        abort(404, f"There is no user with id {user_id} in your organisation.")
    logger.info("password of user %s reset by %s", user_id, admin.email)
    return _page(reset_email=email, reset_password=password)
