"""The Reports page: request a report (scope, period, zone), watch its progress, read it in the
page (the same template the PDF is made from), download PDF and CSV, see the history, and
manage the tenant's e-mailed schedules. Reports are made by the central worker, never here."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from flask import Response, abort, flash, redirect, render_template, request, url_for
from werkzeug.wrappers.response import Response as Redirect

from central import sites
from central.access import require
from central.database import pool
from central.reports import documents, fmt, schedules, service
from central.reports.request import RequestError
from central.reports.scope import ScopeError
from central.reports.units import DEMAND_MINUTES
from central.ui import bp
from central.ui.users import me

HISTORY = 30

for _name, _filter in fmt.FILTERS.items():
    bp.add_app_template_filter(_filter, _name)


def _form_request() -> dict[str, Any]:
    """The request as the service takes it, from the form's fields."""
    picked = [int(s) for s in request.form.getlist("site") if s.isdigit()]
    demand = request.form.get("demand_minutes", "15")
    return {
        "scope": {"site_ids": picked or None},
        "period": {
            "kind": request.form.get("kind", ""),
            "day": request.form.get("day", ""),
            "last_day": request.form.get("last_day") or None,
        },
        "time_zone": request.form.get("time_zone", "").strip(),
        "demand_minutes": int(demand) if demand.isdigit() else demand,
    }


@bp.get("/reports")
@require("viewer")
def reports() -> str:
    user = me()
    with pool().connection() as conn:
        history = service.list_reports(conn, user.tenant_id, limit=HISTORY)
        schedule_rows = schedules.list_schedules(conn, user.tenant_id)
        site_rows = sites.list_sites(conn, user.tenant_id)
    busy = any(r["status"] in ("queued", "running") for r in history)
    return render_template(
        "ui/reports.html",
        history=history,
        schedules=schedule_rows,
        sites=[s for s in site_rows if s.active],
        busy=busy,
        demand_choices=DEMAND_MINUTES,
        today=date.today().isoformat(),
    )


@bp.post("/reports")
@require("viewer")
def request_report() -> Redirect:
    user = me()
    raw = _form_request()
    with pool().connection() as conn, conn.transaction():
        try:
            report_id = service.request_from_body(conn, user.tenant_id, raw, user.actor)
        except (RequestError, ScopeError, service.TooMany) as err:
            flash(f"Not requested: {err}", "error")
            return redirect(url_for("ui.reports"))
    flash(f"Report {report_id} requested; it appears below when the worker has made it.", "ok")
    return redirect(url_for("ui.reports"))


@bp.get("/reports/<int:report_id>")
@require("viewer")
def report(report_id: int) -> str:
    user = me()
    with pool().connection() as conn:
        status = service.get_report(conn, user.tenant_id, report_id)
        if status is None:
            abort(404, f"No report {report_id} in {user.tenant_name}.")
        result = service.get_result(conn, user.tenant_id, report_id)
    return render_template(
        "ui/report.html",
        status=status,
        **(documents.context(result) if result else {}),
    )


@bp.get("/reports/<int:report_id>/<any(pdf, csv):kind>")
@require("viewer")
def report_file(report_id: int, kind: str) -> Response:
    user = me()
    with pool().connection() as conn:
        status = service.get_report(conn, user.tenant_id, report_id)
        content = service.get_file(conn, user.tenant_id, report_id, kind) if status else None
    if status is None or content is None:
        abort(404, f"Report {report_id} has no {kind.upper()} (not finished, or not yours).")
    return Response(content, headers=service.download_headers(status, kind))


@bp.post("/reports/schedules")
@require("operator")
def create_schedule() -> Redirect:
    user = me()
    recipients = [r for r in request.form.get("recipients", "").replace(",", " ").split() if r]
    raw = _form_request()
    body = {
        "cadence": request.form.get("cadence"),
        "scope": raw["scope"],
        "time_zone": raw["time_zone"],
        "demand_minutes": raw["demand_minutes"],
        "recipients": recipients,
    }
    with pool().connection() as conn, conn.transaction():
        try:
            schedules.create(conn, user.tenant_id, body, user.actor, datetime.now(UTC))
        except (RequestError, ScopeError) as err:
            flash(f"Schedule not saved: {err}", "error")
            return redirect(url_for("ui.reports") + "#schedules")
    flash("Schedule saved: the report is e-mailed after each period ends.", "ok")
    return redirect(url_for("ui.reports") + "#schedules")


@bp.post("/reports/schedules/<int:schedule_id>/delete")
@require("operator")
def delete_schedule(schedule_id: int) -> Redirect:
    user = me()
    with pool().connection() as conn, conn.transaction():
        if not schedules.delete(conn, user.tenant_id, schedule_id, user.actor):
            abort(404, f"No schedule {schedule_id} in {user.tenant_name}.")
    flash("Schedule deleted.", "ok")
    return redirect(url_for("ui.reports") + "#schedules")
