"""The Alerts page (firing, pending, muted, history; acknowledge) and one alert's page, which
every alert e-mail links to. Acknowledging goes through ``central.alerts.views`` (audited)."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import abort, flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from central.access import require
from central.alerts import views
from central.database import pool
from central.mail import outbox
from central.ui import bp
from central.ui.users import me

PAGE = 100
TABS = ("firing", "pending", "muted", "resolved")


@bp.get("/alerts")
@require("viewer")
def alerts() -> str:
    user = me()
    tab = request.args.get("tab", "firing")
    if tab not in TABS:
        tab = "firing"
    before = request.args.get("before", type=int)
    with pool().connection() as conn:
        if tab == "resolved":
            rows = views.alerts(conn, user.tenant_id, "resolved", before_id=before, limit=PAGE)
        else:
            opened = views.alerts(conn, user.tenant_id, "open", limit=5000)
            rows = [
                a
                for a in opened
                if (tab == "muted" and a["muted_by"]) or (not a["muted_by"] and a["state"] == tab)
            ]
        counts = {t: 0 for t in TABS}
        for a in views.alerts(conn, user.tenant_id, "open", limit=5000):
            counts["muted" if a["muted_by"] else a["state"]] += 1
        mail = outbox.health(conn, user.tenant_id)
    return render_template(
        "ui/alerts.html",
        tab=tab,
        tabs=TABS,
        rows=rows,
        counts=counts,
        mail=mail,
        next_before=rows[-1]["id"] if tab == "resolved" and len(rows) == PAGE else None,
        now=datetime.now(UTC),
    )


@bp.get("/alerts/<int:alert_id>")
@require("viewer")
def alert(alert_id: int) -> str:
    with pool().connection() as conn:
        item = views.alert(conn, me().tenant_id, alert_id)
    if item is None:
        abort(404, f"There is no alert {alert_id} in your organisation.")
    return render_template("ui/alert.html", a=item)


@bp.post("/alerts/<int:alert_id>/acknowledge")
@require("operator")
def acknowledge(alert_id: int) -> Response:
    user = me()
    with pool().connection() as conn, conn.transaction():
        done = views.acknowledge(conn, user.tenant_id, alert_id, user.actor)
    if done:
        flash(f"Alert {alert_id} acknowledged: no more reminders or escalation for it.", "success")
    else:
        flash(f"Alert {alert_id} is not open or was acknowledged already.", "error")
    back = request.form.get("back", "")
    return redirect(
        back if back.startswith("/") and not back.startswith("//") else url_for("ui.alerts")
    )
