"""The operator API for alerting: alerts (list, one, acknowledge), rules (CRUD and "test against
current data"), silences, maintenance windows and the e-mail outbox — all of the operator's own
tenant. Viewers read; operators acknowledge and silence; admins edit rules, windows and mail.
Every change is audited by the domain functions it calls (``central.alerts.*``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request

from central.access import identify, require
from central.alerts import muting, rules, views
from central.auth import current_operator
from central.body import json_object
from central.database import pool
from central.errors import ApiError
from central.mail import outbox
from central.query_args import MAX_ID, int_arg

bp = Blueprint("alerts_api", __name__, url_prefix="/api/v1")
identify(bp, current_operator)

MAX_BODY = 64 * 1024
MAX_LIMIT = 500


def _problems(err: rules.RuleError | muting.MutingError) -> ApiError:
    return ApiError(422, str(err), err.problems)


def _created(payload: dict[str, Any]) -> Response:
    response = jsonify(payload)
    response.status_code = 201
    return response


# -- alerts ---------------------------------------------------------------------------------
@bp.get("/alerts")
@require("viewer")
def list_alerts() -> Response:
    op = current_operator()
    which = request.args.get("state", "open")
    if which not in views.WHICH:
        raise ApiError(400, "state: expected one of " + ", ".join(views.WHICH))
    site_id = int_arg("site_id", None, 1, 2**31 - 1)
    before = int_arg("before_id", None, 1, MAX_ID)
    limit = int_arg("limit", 100, 1, MAX_LIMIT)
    with pool().connection() as conn:
        items = views.alerts(
            conn, op.tenant_id, which, site_id=site_id, before_id=before, limit=limit
        )
    return jsonify(
        {
            "alerts": [views.json_ready(i) for i in items],
            "next_before_id": items[-1]["id"] if len(items) == limit else None,
        }
    )


@bp.get("/alerts/<int:alert_id>")
@require("viewer")
def get_alert(alert_id: int) -> Response:
    op = current_operator()
    with pool().connection() as conn:
        item = views.alert(conn, op.tenant_id, alert_id)
    if item is None:
        raise ApiError(404, f"no alert with id {alert_id} visible to you")
    return jsonify(views.json_ready(item))


@bp.post("/alerts/<int:alert_id>/acknowledge")
@require("operator")
def acknowledge(alert_id: int) -> Response:
    op = current_operator()
    with pool().connection() as conn, conn.transaction():
        if not views.acknowledge(conn, op.tenant_id, alert_id, op.actor):
            raise ApiError(404, f"no open, unacknowledged alert with id {alert_id}")
        item = views.alert(conn, op.tenant_id, alert_id)
    assert item is not None
    return jsonify(views.json_ready(item))


# -- rules ----------------------------------------------------------------------------------
@bp.get("/alert-rules")
@require("viewer")
def list_rules() -> Response:
    op = current_operator()
    with pool().connection() as conn:
        return jsonify({"rules": rules.list_rules(conn, op.tenant_id)})


@bp.post("/alert-rules")
@require("admin")
def create_rule() -> Response:
    op = current_operator()
    try:
        spec = rules.parse_rule(json_object(request, MAX_BODY))
        with pool().connection() as conn, conn.transaction():
            rule_id = rules.create_rule(conn, op.tenant_id, spec, op.actor)
            return _created(rules.get_rule(conn, op.tenant_id, rule_id))
    except rules.RuleError as err:
        raise _problems(err) from None


@bp.post("/alert-rules/test")
@require("operator")
def try_rule() -> Response:
    """What the rule (saved or not) finds in the current data, without saving anything."""
    op = current_operator()
    try:
        spec = rules.parse_rule(json_object(request, MAX_BODY))
        with pool().connection() as conn:
            found, truncated = views.try_rule(
                conn, op.tenant_id, spec, late_s=float(current_app.config["HEARTBEAT_LATE_S"])
            )
    except rules.RuleError as err:
        raise _problems(err) from None
    return jsonify(
        {
            "matches": [
                {
                    "key": c.key,
                    "site_id": c.site_id,
                    "meter_id": c.meter_id,
                    "point_id": c.point_id,
                    "summary": c.summary,
                    "value": c.value,
                }
                for c in found
            ],
            "truncated": truncated,
        }
    )


@bp.get("/alert-rules/<int:rule_id>")
@require("viewer")
def get_rule(rule_id: int) -> Response:
    op = current_operator()
    with pool().connection() as conn:
        try:
            return jsonify(rules.get_rule(conn, op.tenant_id, rule_id))
        except rules.NotFound as err:
            raise ApiError(404, str(err)) from None


@bp.put("/alert-rules/<int:rule_id>")
@require("admin")
def put_rule(rule_id: int) -> Response:
    op = current_operator()
    try:
        spec = rules.parse_rule(json_object(request, MAX_BODY))
        with pool().connection() as conn, conn.transaction():
            rules.update_rule(conn, op.tenant_id, rule_id, spec, op.actor)
            return jsonify(rules.get_rule(conn, op.tenant_id, rule_id))
    except rules.RuleError as err:
        raise _problems(err) from None
    except rules.NotFound as err:
        raise ApiError(404, str(err)) from None


@bp.delete("/alert-rules/<int:rule_id>")
@require("admin")
def delete_rule(rule_id: int) -> Response:
    op = current_operator()
    with pool().connection() as conn, conn.transaction():
        try:
            rules.delete_rule(conn, op.tenant_id, rule_id, op.actor)
        except rules.NotFound as err:
            raise ApiError(404, str(err)) from None
    return Response(status=204)


# -- silences and maintenance windows -------------------------------------------------------
@bp.get("/silences")
@require("viewer")
def list_silences() -> Response:
    op = current_operator()
    with pool().connection() as conn:
        found = muting.list_silences(conn, [op.tenant_id], datetime.now(UTC), current_only=False)
    return jsonify({"silences": [s.as_json() for s in found]})


@bp.post("/silences")
@require("operator")
def create_silence() -> Response:
    op = current_operator()
    now = datetime.now(UTC)
    body = json_object(request, MAX_BODY)
    try:
        with pool().connection() as conn, conn.transaction():
            silence_id = muting.create_silence(conn, op.tenant_id, body, op.actor, now)
            found = muting.list_silences(conn, [op.tenant_id], now, current_only=True)
    except muting.MutingError as err:
        raise _problems(err) from None
    return _created(next(s.as_json() for s in found if s.id == silence_id))


@bp.post("/silences/<int:silence_id>/end")
@require("operator")
def end_silence(silence_id: int) -> Response:
    op = current_operator()
    with pool().connection() as conn, conn.transaction():
        if not muting.end_silence(conn, op.tenant_id, silence_id, op.actor, datetime.now(UTC)):
            raise ApiError(404, f"no running silence with id {silence_id}")
    return Response(status=204)


@bp.get("/maintenance-windows")
@require("viewer")
def list_windows() -> Response:
    op = current_operator()
    with pool().connection() as conn:
        found = muting.list_windows(conn, [op.tenant_id])
    return jsonify({"windows": [w.as_json() for w in found]})


@bp.post("/maintenance-windows")
@require("admin")
def create_window() -> Response:
    op = current_operator()
    body = json_object(request, MAX_BODY)
    try:
        with pool().connection() as conn, conn.transaction():
            window_id = muting.create_window(conn, op.tenant_id, body, op.actor)
            found = muting.list_windows(conn, [op.tenant_id])
    except muting.MutingError as err:
        raise _problems(err) from None
    return _created(next(w.as_json() for w in found if w.id == window_id))


@bp.delete("/maintenance-windows/<int:window_id>")
@require("admin")
def delete_window(window_id: int) -> Response:
    op = current_operator()
    with pool().connection() as conn, conn.transaction():
        if not muting.delete_window(conn, op.tenant_id, window_id, op.actor):
            raise ApiError(404, f"no maintenance window with id {window_id}")
    return Response(status=204)


# -- the e-mail outbox ----------------------------------------------------------------------
@bp.get("/mail")
@require("admin")
def list_mail() -> Response:
    op = current_operator()
    status = request.args.get("status")
    if status is not None and status not in outbox.STATUSES:
        raise ApiError(400, "status: expected one of " + ", ".join(outbox.STATUSES))
    before = int_arg("before_id", None, 1, MAX_ID)
    limit = int_arg("limit", 100, 1, MAX_LIMIT)
    with pool().connection() as conn:
        found = outbox.deliveries(conn, op.tenant_id, status=status, before_id=before, limit=limit)
        health = outbox.health(conn, op.tenant_id)
    return jsonify(
        {
            "deliveries": [d.as_json() for d in found],
            "queued": health.queued,
            "failed": health.failed,
            "last_error": health.last_error,
        }
    )


@bp.post("/mail/<int:delivery_id>/requeue")
@require("admin")
def requeue_mail(delivery_id: int) -> Response:
    op = current_operator()
    with pool().connection() as conn, conn.transaction():
        if not outbox.requeue(conn, delivery_id, op.tenant_id):
            raise ApiError(404, f"no failed e-mail with id {delivery_id}")
        from central import audit

        audit.record(conn, op.tenant_id, op.actor, "mail.requeue", ("mail", delivery_id))
    return Response(status=204)
