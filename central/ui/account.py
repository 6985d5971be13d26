"""Signing in and out, and changing one's own password."""

from __future__ import annotations

import logging

from flask import flash, redirect, render_template, request, session, url_for
from werkzeug.wrappers import Response

from central.access import require
from central.database import pool
from central.extensions import limiter
from central.ui import bp
from central.ui.users import authenticate, login_user, logout_user, me
from central.users import MIN_PASSWORD, change_password
from common.attempts import TooManyAttempts
from common.redirects import local_path

logger = logging.getLogger(__name__)


def _safe_next(target: str | None) -> str:
    """Only a path on this server: ``?next=`` must not turn sign-in into a redirector."""
    return local_path(target) or url_for("ui.dashboard")


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit("20/minute", methods=["POST"])
def login() -> Response | str | tuple[str, int]:
    if request.method == "GET":
        return render_template("ui/login.html", email="", next=request.args.get("next", ""))
    email = request.form.get("email", "")
    try:
        with pool().connection() as conn:
            user = authenticate(conn, email, request.form.get("password", ""))
    except TooManyAttempts as err:
        flash(f"Too many failed sign-ins; try again in {err.retry_after} s.", "error")
        page = render_template("ui/login.html", email=email, next=request.form.get("next", ""))
        return Response(page, 429, {"Retry-After": str(err.retry_after)})
    if user is None:
        logger.warning("UI sign-in refused for %r from %s", email, request.remote_addr)
        flash("Wrong e-mail or password (or the account is deactivated).", "error")
        return render_template("ui/login.html", email=email, next=request.form.get("next", "")), 401
    session.clear()  # a fresh session (and CSRF token) for the new identity
    login_user(user)
    logger.info("UI sign-in of %s (tenant %s, %s)", user.email, user.tenant_id, user.role)
    return redirect(_safe_next(request.form.get("next")))


@bp.post("/logout")
@require("viewer")
def logout() -> Response:
    logout_user()
    session.clear()
    flash("Signed out.", "info")
    return redirect(url_for("ui.login"))


def _password_problem(current_ok: bool, new: str, again: str) -> str | None:
    if not current_ok:
        return "The current password is wrong."
    if len(new) < MIN_PASSWORD:
        return f"Use at least {MIN_PASSWORD} characters for the new password."
    if new != again:
        return "The two new passwords differ."
    return None


@bp.route("/account", methods=["GET", "POST"])
@require("viewer")
def account() -> Response | str | tuple[str, int]:
    user = me()
    if request.method == "GET":
        return render_template("ui/account.html")
    new = request.form.get("new_password", "")
    try:
        with pool().connection() as conn:
            current_ok = authenticate(conn, user.email, request.form.get("current_password", ""))
    except TooManyAttempts as err:
        flash(f"Too many wrong passwords; try again in {err.retry_after} s.", "error")
        return Response(
            render_template("ui/account.html"), 429, {"Retry-After": str(err.retry_after)}
        )
    with pool().connection() as conn, conn.transaction():
        problem = _password_problem(
            current_ok is not None, new, request.form.get("new_password_again", "")
        )
        if problem is None:
            change_password(conn, user.user_id, user.tenant_id, new, user.actor)
    if problem is not None:
        flash(problem, "error")
        return render_template("ui/account.html"), 400
    with pool().connection() as conn:
        fresh = authenticate(conn, user.email, new)
    if fresh is not None:
        logout_user()  # this session's id ends; a new one carries on under the new fingerprint
        login_user(fresh)
    logger.info("password of %s changed", user.email)
    flash("Password changed. Other sessions of this account are signed out.", "success")
    return redirect(url_for("ui.account"))
