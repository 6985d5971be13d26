"""The operator JSON API: sites, keys, meters and readings of the operator's own tenant.

Authentication is ``central.auth``, the role check ``central.access.require``. A site or meter of another tenant answers 404,
not 403, so the API does not reveal what other tenants have.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request

from central import keys, meters, sites
from central.access import identify, require
from central.auth import basic_credentials, check_password, current_operator, issue_token
from central.body import json_body
from central.connectivity import Thresholds, connectivity
from central.database import pool, read_pool
from central.domain_errors import Conflict, NotFound
from central.errors import ApiError
from central.tenants import site_tenant
from common.timestamps import format_ts, parse_ts

bp = Blueprint("operator", __name__, url_prefix="/api/v1")
identify(bp, current_operator)

MAX_PAGE = 10000


def _not_found(what: str) -> ApiError:
    return ApiError(404, f"no {what} visible to you")


@bp.post("/auth/token")
def token() -> Response:
    creds = basic_credentials()
    if creds is None:
        raise ApiError(401, "send HTTP Basic e-mail and password to get a token")
    with pool().connection() as conn, conn.transaction():
        op = check_password(conn, *creds)
        value, expires = issue_token(
            conn, op.user_id, float(current_app.config["OPERATOR_TOKEN_HOURS"])
        )
    return jsonify({"token": value, "expires_at": expires.isoformat(), "role": op.role})


@bp.get("/sites")
@require("viewer")
def list_sites() -> Response:
    op = current_operator()
    now = datetime.now(UTC)
    limits = Thresholds.from_config(current_app.config)
    with pool().connection() as conn:
        rows = sites.list_sites(conn, op.tenant_id)
    return jsonify(
        {
            "sites": [
                site.as_json() | {"status": connectivity(site.last_heartbeat_at, now, limits)}
                for site in rows
            ]
        }
    )


@bp.post("/sites")
@require("admin")
def create_site() -> Response:
    op = current_operator()
    body = json_body(request, 64 * 1024)
    name = body.get("name") if isinstance(body, dict) else None
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        raise ApiError(
            422, "name: expected the site's name, 1 to 200 characters", [{"field": "name"}]
        )
    with pool().connection() as conn, conn.transaction():
        try:
            created = sites.create_site(conn, op.tenant_id, name.strip(), op.actor)
        except Conflict as err:
            raise ApiError(409, str(err)) from None
    response = jsonify(
        {
            "site_id": created.site_id,
            "name": created.name,
            "api_key": created.key.plaintext,
            "key_prefix": created.key.prefix,
        }
    )
    response.status_code = 201
    return response


def _own_site(conn: Any, site_id: int, tenant_id: int) -> None:
    try:
        site_tenant(conn, site_id, tenant_id)
    except NotFound:
        raise _not_found(f"site with id {site_id}") from None


@bp.get("/sites/<int:site_id>/status")
@require("viewer")
def site_status(site_id: int) -> Response:
    op = current_operator()
    with pool().connection() as conn:
        site = sites.tenant_site(conn, site_id, op.tenant_id)
    if site is None:
        raise _not_found(f"site with id {site_id}")
    last = site.last_heartbeat_at
    return jsonify(
        {
            "id": site.id,
            "name": site.name,
            "active": site.active,
            "status": connectivity(
                last, datetime.now(UTC), Thresholds.from_config(current_app.config)
            ),
            "last_heartbeat_at": last.isoformat() if last else None,
            "last_status": site.last_status,
            "config_version": site.config_version,
        }
    )


@bp.get("/sites/<int:site_id>/keys")
@require("admin")
def site_keys(site_id: int) -> Response:
    op = current_operator()
    with pool().connection() as conn:
        _own_site(conn, site_id, op.tenant_id)
        return jsonify({"keys": [k.as_json() for k in keys.list_keys(conn, site_id)]})


@bp.post("/sites/<int:site_id>/keys/rotate")
@require("admin")
def rotate(site_id: int) -> Response:
    op = current_operator()
    body = json_body(request, 64 * 1024) if request.content_length else {}
    hours = body.get("overlap_hours") if isinstance(body, dict) else None
    if hours is None:
        hours = float(current_app.config["KEY_OVERLAP_HOURS"])
    if isinstance(hours, bool) or not isinstance(hours, int | float) or not 0 <= hours <= 720:
        raise ApiError(
            422, "overlap_hours: expected hours from 0 to 720", [{"field": "overlap_hours"}]
        )
    with pool().connection() as conn, conn.transaction():
        _own_site(conn, site_id, op.tenant_id)
        new = keys.rotate_key(conn, site_id, timedelta(hours=hours), op.actor)
    response = jsonify({"api_key": new.plaintext, "key_prefix": new.prefix, "overlap_hours": hours})
    response.status_code = 201
    return response


@bp.post("/sites/<int:site_id>/keys/revoke")
@require("admin")
def revoke(site_id: int) -> Response:
    op = current_operator()
    body = json_body(request, 64 * 1024) if request.content_length else {}
    prefix = body.get("prefix") if isinstance(body, dict) else None
    if prefix is not None and not isinstance(prefix, str):
        raise ApiError(
            422, "prefix: expected a key prefix such as mtk_1a2b3c4d, or omit it for all keys"
        )
    with pool().connection() as conn, conn.transaction():
        _own_site(conn, site_id, op.tenant_id)
        try:
            revoked = keys.revoke_keys(conn, site_id, prefix, op.actor)
        except NotFound as err:
            raise ApiError(404, str(err)) from None
    return jsonify({"revoked": revoked})


@bp.get("/meters")
@require("viewer")
def list_meters() -> Response:
    op = current_operator()
    site_id = request.args.get("site_id", type=int)
    if site_id is None:
        raise ApiError(400, "site_id: the query needs ?site_id=<id>")
    with pool().connection() as conn:
        _own_site(conn, site_id, op.tenant_id)
        ids = [
            r[0]
            for r in conn.execute(
                "SELECT id FROM meters WHERE site_id = %s ORDER BY external_id", (site_id,)
            )
        ]
        return jsonify({"meters": [meters.meter_json(conn, i) for i in ids]})


@bp.post("/meters")
@require("operator")
def create_meter() -> Response:
    op = current_operator()
    body = json_body(request, 1024 * 1024)
    site_id = body.get("site_id") if isinstance(body, dict) else None
    if isinstance(site_id, bool) or not isinstance(site_id, int):
        raise ApiError(422, "site_id: expected the id of one of your sites", [{"field": "site_id"}])
    meter = meters.parse_meter(body)
    with pool().connection() as conn, conn.transaction():
        _own_site(conn, site_id, op.tenant_id)
        meter_id = meters.create_meter(conn, site_id, op.tenant_id, meter, op.actor)
        response = jsonify(meters.meter_json(conn, meter_id))
    response.status_code = 201
    return response


def _own_meter(conn: Any, meter_id: int, tenant_id: int) -> None:
    if meters.meter_tenant(conn, meter_id) != tenant_id:
        raise _not_found(f"meter with id {meter_id}")


@bp.get("/meters/<int:meter_id>")
@require("viewer")
def get_meter(meter_id: int) -> Response:
    op = current_operator()
    with pool().connection() as conn:
        _own_meter(conn, meter_id, op.tenant_id)
        return jsonify(meters.meter_json(conn, meter_id))


@bp.put("/meters/<int:meter_id>")
@require("operator")
def put_meter(meter_id: int) -> Response:
    op = current_operator()
    meter = meters.parse_meter(json_body(request, 1024 * 1024))
    with pool().connection() as conn, conn.transaction():
        _own_meter(conn, meter_id, op.tenant_id)
        meters.update_meter(conn, meter_id, op.tenant_id, meter, op.actor)
        return jsonify(meters.meter_json(conn, meter_id))


@bp.delete("/meters/<int:meter_id>")
@require("operator")
def delete_meter(meter_id: int) -> Response:
    op = current_operator()
    with pool().connection() as conn, conn.transaction():
        _own_meter(conn, meter_id, op.tenant_id)
        meters.deactivate_meter(conn, meter_id, op.tenant_id, op.actor)
        return jsonify(meters.meter_json(conn, meter_id))


def _time_arg(name: str) -> datetime | None:
    raw = request.args.get(name)
    if raw is None:
        return None
    try:
        return parse_ts(raw, name)
    except ValueError as err:
        raise ApiError(400, str(err)) from None


@bp.get("/readings")
@require("viewer")
def readings() -> Response:
    """Keyset-paginated by (ts, point_id): ``next`` is the ``after`` of the following page."""
    op = current_operator()
    site_id = request.args.get("site_id", type=int)
    if site_id is None:
        raise ApiError(400, "site_id: the query needs ?site_id=<id>")
    start, end = _time_arg("from"), _time_arg("to")
    limit = request.args.get("limit", default=1000, type=int)
    if not 1 <= limit <= MAX_PAGE:
        raise ApiError(400, f"limit: expected 1 to {MAX_PAGE}")
    after_ts, after_point = None, 0
    after = request.args.get("after")
    if after:
        ts_text, _, point_text = after.rpartition("|")
        try:
            after_ts, after_point = datetime.fromisoformat(ts_text), int(point_text)
        except ValueError:
            raise ApiError(
                400, "after: pass the 'next' value of the previous page unchanged"
            ) from None
        if after_ts.tzinfo is None:
            raise ApiError(400, "after: pass the 'next' value of the previous page unchanged")
    with read_pool().connection() as conn:
        _own_site(conn, site_id, op.tenant_id)
        rows = conn.execute(
            """SELECT r.ts, r.point_id, m.external_id, p.name, r.value, p.unit
               FROM readings r JOIN meter_points p ON p.id = r.point_id
               JOIN meters m ON m.id = p.meter_id
               WHERE m.site_id = %(site)s
                 AND (%(meter)s::text IS NULL OR m.external_id = %(meter)s)
                 AND (%(point)s::text IS NULL OR p.name = %(point)s)
                 AND (%(start)s::timestamptz IS NULL OR r.ts >= %(start)s)
                 AND (%(end)s::timestamptz IS NULL OR r.ts < %(end)s)
                 AND (%(after_ts)s::timestamptz IS NULL OR (r.ts, r.point_id) > (%(after_ts)s, %(after_point)s))
               ORDER BY r.ts, r.point_id LIMIT %(limit)s""",
            {
                "site": site_id,
                "meter": request.args.get("meter"),
                "point": request.args.get("point"),
                "start": start,
                "end": end,
                "after_ts": after_ts,
                "after_point": after_point,
                "limit": limit,
            },
        ).fetchall()
    items = [
        {
            "ts": format_ts(r[0]),
            "meter": r[2],
            "point": r[3],
            "value": r[4],
            "unit": r[5],
        }
        for r in rows
    ]
    next_cursor = f"{rows[-1][0].isoformat()}|{rows[-1][1]}" if len(rows) == limit else None
    return jsonify({"readings": items, "next": next_cursor})
