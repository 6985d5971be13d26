"""The operator API's reports: request one, follow its progress, download its PDF and CSV, and
manage the tenant's report schedules. The work itself happens in the central worker
(``central.reports.runner``); these views only read and write rows."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Response, jsonify, request

from central.access import identify, require
from central.auth import current_operator
from central.body import json_object
from central.database import pool
from central.errors import ApiError
from central.query_args import MAX_ID, int_arg
from central.reports import schedules, service
from central.reports.request import RequestError
from central.reports.scope import ScopeError

bp = Blueprint("reports_api", __name__, url_prefix="/api/v1")
identify(bp, current_operator)

BODY_LIMIT = 64 * 1024
MAX_PAGE = 100


def _invalid(err: RequestError) -> ApiError:
    return ApiError(422, str(err), [{"field": f, "reason": r} for f, r in err.problems])


def _scope_error(err: ScopeError) -> ApiError:
    # a site of another tenant is "not visible", as everywhere in the API
    return ApiError(404, str(err), [{"field": "scope.site_ids"}])


@bp.post("/reports")
@require("viewer")
def request_report() -> Response:
    op = current_operator()
    body = json_object(request, BODY_LIMIT)
    with pool().connection() as conn, conn.transaction():
        try:
            report_id = service.request_from_body(conn, op.tenant_id, body, op.actor)
        except RequestError as err:
            raise _invalid(err) from None
        except ScopeError as err:
            raise _scope_error(err) from None
        except service.TooMany as err:
            raise ApiError(429, str(err)) from None
        status = service.get_report(conn, op.tenant_id, report_id)
    response = jsonify(status)
    response.status_code = 202
    response.headers["Location"] = f"/api/v1/reports/{report_id}"
    return response


@bp.get("/reports")
@require("viewer")
def list_reports() -> Response:
    op = current_operator()
    limit = int_arg("limit", 20, 1, MAX_PAGE)
    before = int_arg("before", None, 1, MAX_ID)
    with pool().connection() as conn:
        rows = service.list_reports(conn, op.tenant_id, limit=limit, before=before)
    more = len(rows) == limit
    return jsonify({"reports": rows, "next_before": rows[-1]["id"] if more else None})


def _status(conn: Any, tenant_id: int, report_id: int) -> dict[str, Any]:
    status = service.get_report(conn, tenant_id, report_id)
    if status is None:
        raise ApiError(404, f"no report with id {report_id} visible to you")
    return status


@bp.get("/reports/<int:report_id>")
@require("viewer")
def get_report(report_id: int) -> Response:
    op = current_operator()
    with pool().connection() as conn:
        return jsonify(_status(conn, op.tenant_id, report_id))


@bp.get("/reports/<int:report_id>/<any(pdf, csv):kind>")
@require("viewer")
def report_file(report_id: int, kind: str) -> Response:
    op = current_operator()
    with pool().connection() as conn:
        status = _status(conn, op.tenant_id, report_id)
        content = service.get_file(conn, op.tenant_id, report_id, kind)
    if content is None:
        raise ApiError(409, f"report {report_id} is {status['status']}, it has no files yet")
    return Response(content, headers=service.download_headers(status, kind))


@bp.get("/report-schedules")
@require("viewer")
def list_schedules() -> Response:
    op = current_operator()
    with pool().connection() as conn:
        return jsonify({"schedules": schedules.list_schedules(conn, op.tenant_id)})


@bp.post("/report-schedules")
@require("operator")
def create_schedule() -> Response:
    op = current_operator()
    body = json_object(request, BODY_LIMIT)
    with pool().connection() as conn, conn.transaction():
        try:
            schedule_id = schedules.create(conn, op.tenant_id, body, op.actor, datetime.now(UTC))
        except RequestError as err:
            raise _invalid(err) from None
        except ScopeError as err:
            raise _scope_error(err) from None
        created = next(
            s for s in schedules.list_schedules(conn, op.tenant_id) if s["id"] == schedule_id
        )
    response = jsonify(created)
    response.status_code = 201
    return response


@bp.delete("/report-schedules/<int:schedule_id>")
@require("operator")
def delete_schedule(schedule_id: int) -> Response:
    op = current_operator()
    with pool().connection() as conn, conn.transaction():
        if not schedules.delete(conn, op.tenant_id, schedule_id, op.actor):
            raise ApiError(404, f"no report schedule with id {schedule_id} visible to you")
    return Response(status=204)
