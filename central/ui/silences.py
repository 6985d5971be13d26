"""The Silences page: silences (mute a site, meter or rule until a time), recurring
maintenance windows in a site's time zone, and the e-mail outbox's failures (send again)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from flask import flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from central import audit
from central.access import require
from central.alerts import muting
from central.database import pool
from central.mail import outbox
from central.ui import bp
from central.ui.users import me


def _page(status: int = 200, **extra: Any) -> tuple[str, int]:
    user = me()
    now = datetime.now(UTC)
    with pool().connection() as conn:
        silences = muting.list_silences(conn, [user.tenant_id], now, current_only=False)
        windows = muting.list_windows(conn, [user.tenant_id])
        sites = conn.execute(
            "SELECT id, name FROM sites WHERE tenant_id = %s ORDER BY name", (user.tenant_id,)
        ).fetchall()
        failed = outbox.deliveries(conn, user.tenant_id, status="failed", limit=50)
        queued = outbox.deliveries(conn, user.tenant_id, status="queued", limit=50)
    return render_template(
        "ui/silences.html",
        silences=silences,
        windows=windows,
        sites=dict(sites),
        failed=failed,
        queued=queued,
        now=now,
        default_end=(now + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M"),
        **extra,
    ), status


@bp.get("/alerts/silences")
@require("viewer")
def silences() -> tuple[str, int]:
    return _page()


def _utc(value: str) -> str:
    """A datetime-local field (UTC, as the page says) as an ISO time with a zone."""
    value = value.strip()
    return value + "+00:00" if value and "+" not in value and not value.endswith("Z") else value


@bp.post("/alerts/silences")
@require("operator")
def create_silence() -> Response | tuple[str, int]:
    user = me()
    form = request.form
    body = {
        "site_id": form.get("site_id") or None,
        "meter_id": form.get("meter_id") or None,
        "rule_id": form.get("rule_id") or None,
        "starts_at": _utc(form.get("starts_at", "")) or None,
        "ends_at": _utc(form.get("ends_at", "")),
        "comment": form.get("comment", ""),
    }
    try:
        with pool().connection() as conn, conn.transaction():
            muting.create_silence(conn, user.tenant_id, body, user.actor, datetime.now(UTC))
    except muting.MutingError as err:
        return _page(422, problems=err.problems)
    flash("Silence created.", "success")
    return redirect(url_for("ui.silences"))


@bp.post("/alerts/silences/<int:silence_id>/end")
@require("operator")
def end_silence(silence_id: int) -> Response:
    user = me()
    with pool().connection() as conn, conn.transaction():
        ended = muting.end_silence(conn, user.tenant_id, silence_id, user.actor, datetime.now(UTC))
    flash(
        "Silence ended." if ended else "That silence is not running.",
        "success" if ended else "error",
    )
    return redirect(url_for("ui.silences"))


@bp.post("/alerts/windows")
@require("admin")
def create_window() -> Response | tuple[str, int]:
    user = me()
    form = request.form
    body = {
        "site_id": form.get("site_id") or None,
        "name": form.get("name", ""),
        "timezone": form.get("timezone", "").strip(),
        "weekdays": [int(d) for d in form.getlist("weekdays") if d.isdigit()],
        "start_time": form.get("start_time", ""),
        "duration_minutes": form.get("duration_minutes", ""),
    }
    try:
        with pool().connection() as conn, conn.transaction():
            muting.create_window(conn, user.tenant_id, body, user.actor)
    except muting.MutingError as err:
        return _page(422, problems=err.problems)
    flash("Maintenance window created.", "success")
    return redirect(url_for("ui.silences"))


@bp.post("/alerts/windows/<int:window_id>/delete")
@require("admin")
def delete_window(window_id: int) -> Response:
    user = me()
    with pool().connection() as conn, conn.transaction():
        muting.delete_window(conn, user.tenant_id, window_id, user.actor)
    flash("Maintenance window deleted.", "success")
    return redirect(url_for("ui.silences"))


@bp.post("/alerts/mail/<int:delivery_id>/requeue")
@require("admin")
def requeue_mail(delivery_id: int) -> Response:
    user = me()
    with pool().connection() as conn, conn.transaction():
        done = outbox.requeue(conn, delivery_id, user.tenant_id)
        if done:
            audit.record(conn, user.tenant_id, user.actor, "mail.requeue", ("mail", delivery_id))
    flash(
        "E-mail queued again." if done else "That e-mail is not failed.",
        "success" if done else "error",
    )
    return redirect(url_for("ui.silences"))
