"""The Rules page: the tenant's alert rules, a form per rule (admins edit, operators may test),
and "test this rule against the current data" — the same SQL as the evaluation, in a rolled-back
transaction, so nothing is saved."""

from __future__ import annotations

from typing import Any

from flask import abort, current_app, flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from central.access import require
from central.alerts import rules, views
from central.database import pool
from central.ui import bp
from central.ui.users import me


def _number(raw: str) -> float | int | str:
    try:
        value = float(raw)
    except ValueError:
        return raw  # parse_rule names the field and what it expects
    return int(value) if value.is_integer() else value


def rule_from_form(form: Any) -> dict[str, Any]:
    """The rule's JSON shape from the form: only the chosen kind's parameters count."""
    kind = form.get("kind", "")
    params: dict[str, Any] = {}
    for p in rules.KINDS.get(kind, rules.Kind("", "", ())).params:
        raw = form.get(f"p_{kind}_{p.name}", "").strip()
        if raw:
            params[p.name] = raw if p.type is str else _number(raw)
    minutes = form.get("for_minutes", "").strip() or "0"
    escalate = form.get("escalate_minutes", "").strip()
    return {
        "name": form.get("name", ""),
        "kind": kind,
        "severity": form.get("severity", "warning"),
        "site_id": form.get("site_id") or None,
        "meter_id": form.get("meter_id") or None,
        "params": params,
        "for_s": _seconds(minutes),
        "recipients": form.get("recipients", ""),
        "escalation_recipients": form.get("escalation_recipients", ""),
        "escalate_after_s": _seconds(escalate) if escalate else None,
        "enabled": form.get("enabled") == "on",
    }


def _seconds(minutes: str) -> int | str:
    value = _number(minutes)
    return round(value * 60) if isinstance(value, int | float) else value


def _sites(conn: Any, tenant_id: int) -> list[tuple[int, str]]:
    rows = conn.execute(
        "SELECT id, name FROM sites WHERE tenant_id = %s ORDER BY name", (tenant_id,)
    ).fetchall()
    return [(r[0], r[1]) for r in rows]


@bp.get("/alerts/rules")
@require("viewer")
def alert_rules() -> str:
    with pool().connection() as conn:
        found = rules.list_rules(conn, me().tenant_id)
        sites = dict(_sites(conn, me().tenant_id))
    return render_template("ui/rules.html", rules=found, kinds=rules.KINDS, sites=sites)


def _form(rule: dict[str, Any], rule_id: int | None, **extra: Any) -> str:
    with pool().connection() as conn:
        sites = _sites(conn, me().tenant_id)
    return render_template(
        "ui/rule_form.html",
        rule=rule,
        rule_id=rule_id,
        kinds=rules.KINDS,
        severities=rules.SEVERITIES,
        sites=sites,
        **extra,
    )


BLANK = {"name": "", "kind": "value_threshold", "severity": "warning", "params": {}, "for_s": 0,
         "recipients": [], "escalation_recipients": [], "escalate_after_s": None,
         "enabled": True, "site_id": None, "meter_id": None}  # fmt: skip


@bp.get("/alerts/rules/new")
@require("operator")
def new_rule() -> str:
    return _form(BLANK, None)


@bp.get("/alerts/rules/<int:rule_id>")
@require("viewer")
def edit_rule(rule_id: int) -> str:
    with pool().connection() as conn:
        try:
            rule = rules.get_rule(conn, me().tenant_id, rule_id)
        except rules.NotFound:
            abort(404, f"There is no alert rule {rule_id} in your organisation.")
    return _form(rule, rule_id)


@bp.post("/alerts/rules/new")
@bp.post("/alerts/rules/<int:rule_id>")
@require("operator")
def save_rule(rule_id: int | None = None) -> Response | str | tuple[str, int]:
    user = me()
    body = rule_from_form(request.form)
    action = request.form.get("action", "save")
    try:
        spec = rules.parse_rule(body)
    except rules.RuleError as err:
        return _form(body, rule_id, problems=err.problems), 422
    if action == "test":
        late_s = float(current_app.config["HEARTBEAT_LATE_S"])
        with pool().connection() as conn:
            found, truncated = views.try_rule(conn, user.tenant_id, spec, late_s=late_s)
        return _form(body, rule_id, tested=found, truncated=truncated)
    if not user.can("admin"):
        abort(403, "Saving a rule needs the admin role; you may test it.")
    try:
        with pool().connection() as conn, conn.transaction():
            if rule_id is None:
                rule_id = rules.create_rule(conn, user.tenant_id, spec, user.actor)
            else:
                rules.update_rule(conn, user.tenant_id, rule_id, spec, user.actor)
    except rules.RuleError as err:
        return _form(body, rule_id, problems=err.problems), 422
    except rules.NotFound:
        abort(404, f"There is no alert rule {rule_id} in your organisation.")
    flash(f"Rule {spec.name!r} saved.", "success")
    return redirect(url_for("ui.alert_rules"))


@bp.post("/alerts/rules/<int:rule_id>/delete")
@require("admin")
def delete_rule(rule_id: int) -> Response:
    user = me()
    with pool().connection() as conn, conn.transaction():
        try:
            rules.delete_rule(conn, user.tenant_id, rule_id, user.actor)
        except rules.NotFound:
            abort(404, f"There is no alert rule {rule_id} in your organisation.")
    flash("Rule deleted with its alerts.", "success")
    return redirect(url_for("ui.alert_rules"))
