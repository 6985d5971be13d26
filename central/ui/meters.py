"""Adding, editing and deactivating meters: the configuration appliances pull.

The form is turned into the same meter object the operator API takes and checked by
``central.meters.parse_meter``, then written by ``create_meter`` / ``update_meter``, so the UI
cannot accept a meter the API would refuse, and every change bumps the site's config version
(the appliance's next ``GET /api/v1/sync/config`` sees a new ETag).
"""

from __future__ import annotations

import logging
from typing import Any

import psycopg
from flask import abort, flash, redirect, render_template, request, url_for
from werkzeug.datastructures import MultiDict
from werkzeug.wrappers import Response

from central import meters
from central.access import require
from central.database import pool
from central.errors import ApiError
from central.sites import Site
from central.ui import bp
from central.ui.sites import own_site
from central.ui.users import me

logger = logging.getLogger(__name__)

BLANK_ROWS = 3  # empty point rows offered on the form (a script adds more)
POINT_FIELDS = ("name", "object", "property", "unit")


def meter_from_form(form: MultiDict[str, str]) -> dict[str, Any]:
    """The form as the operator API's meter object; empty point rows are left out."""
    instance_raw = form.get("device_instance", "").strip()
    instance: Any = None
    if instance_raw:
        # ASCII digits only ("²".isdigit() is true, int("²") fails); a longer one is left as
        # text for the meter check to refuse by name
        digits = instance_raw.isascii() and instance_raw.isdigit() and len(instance_raw) <= 12
        instance = int(instance_raw) if digits else instance_raw
    columns = [form.getlist(f"point_{f}") for f in POINT_FIELDS]
    points = []
    for values in zip(*columns, strict=False):
        point = dict(zip(POINT_FIELDS, (v.strip() for v in values), strict=True))
        if any(point.values()):
            points.append({k: v for k, v in point.items() if v or k in ("name", "object")})
    return {
        "external_id": form.get("external_id", ""),
        "name": form.get("name", ""),
        "address": form.get("address", "").strip() or None,
        "device_instance": instance,
        "points": points,
        "cov": bool(form.get("cov")),
    }


def _own_meter(conn: psycopg.Connection[Any], meter_id: int) -> dict[str, Any]:
    if meters.meter_tenant(conn, meter_id) != me().tenant_id:
        abort(404, f"There is no meter with id {meter_id} in your organisation.")
    return meters.meter_json(conn, meter_id)


def _render(
    site: Site, meter: dict[str, Any], problems: list[Any], status: int = 200
) -> tuple[str, int]:
    points = [p for p in meter.get("points", []) if p.get("active", True)]
    return render_template(
        "ui/meter_form.html",
        site=site,
        meter=meter,
        points=points + [{}] * BLANK_ROWS,
        problems=problems,
    ), status


@bp.route("/sites/<int:site_id>/meters/new", methods=["GET", "POST"])
@require("operator")
def new_meter(site_id: int) -> Response | tuple[str, int]:
    user = me()
    with pool().connection() as conn:
        site = own_site(conn, site_id)
    if request.method == "GET":
        return _render(site, {}, [])
    body = meter_from_form(request.form)
    try:
        meter = meters.parse_meter(body)
        with pool().connection() as conn, conn.transaction():
            own_site(conn, site_id)
            meter_id = meters.create_meter(conn, site_id, user.tenant_id, meter, user.actor)
    except ApiError as err:
        return _render(site, body, err.details or [{"field": "", "reason": err.message}], 422)
    logger.info("meter %s added to site %s by %s", meter_id, site_id, user.email)
    flash(
        f"Meter {meter['external_id']} added; the appliance picks it up at its next sync.",
        "success",
    )
    return redirect(url_for("ui.site", site_id=site_id) + "#meters")


@bp.route("/meters/<int:meter_id>/edit", methods=["GET", "POST"])
@require("operator")
def edit_meter(meter_id: int) -> Response | tuple[str, int]:
    user = me()
    with pool().connection() as conn:
        current = _own_meter(conn, meter_id)
        site = own_site(conn, current["site_id"])
    if request.method == "GET":
        return _render(site, current, [])
    body = meter_from_form(request.form)
    body["id"] = meter_id
    try:
        meter = meters.parse_meter(body)
        with pool().connection() as conn, conn.transaction():
            _own_meter(conn, meter_id)
            meters.update_meter(conn, meter_id, user.tenant_id, meter, user.actor)
    except ApiError as err:
        return _render(site, body, err.details or [{"field": "", "reason": err.message}], 422)
    logger.info("meter %s of site %s changed by %s", meter_id, site.id, user.email)
    flash(
        f"Meter {meter['external_id']} saved; the appliance picks it up at its next sync.",
        "success",
    )
    return redirect(url_for("ui.site", site_id=site.id) + "#meters")


@bp.post("/meters/<int:meter_id>/deactivate")
@require("operator")
def deactivate_meter(meter_id: int) -> Response:
    user = me()
    with pool().connection() as conn, conn.transaction():
        meter = _own_meter(conn, meter_id)
        meters.deactivate_meter(conn, meter_id, user.tenant_id, user.actor)
    logger.info("meter %s of site %s deactivated by %s", meter_id, meter["site_id"], user.email)
    flash(
        f"Meter {meter['external_id']} deactivated: the appliance stops polling it; "
        "its readings are kept.",
        "success",
    )
    return redirect(url_for("ui.site", site_id=meter["site_id"]) + "#meters")
