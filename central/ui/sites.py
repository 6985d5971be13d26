"""The site page (meters, heartbeats, keys, recent changes) and site and key management.

All changes go through ``central.sites`` and ``central.keys`` (the same functions as the CLI and the operator API),
so they are audited the same way. A site of another tenant is a 404, never a 403: the UI does
not reveal that it exists. A new API key is rendered straight into the answer to the POST that
made it (never stored in the session, never redirected to), with ``Cache-Control: no-store``:
once the page is left, the key is gone.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from flask import abort, current_app, flash, redirect, render_template, request, url_for
from psycopg.rows import class_row
from werkzeug.wrappers import Response

from central import audit, keys, sites
from central.access import require
from central.alerts import views
from central.connectivity import Thresholds, connectivity
from central.database import pool
from central.domain_errors import Conflict, NotFound
from central.ui import bp
from central.ui.users import me

logger = logging.getLogger(__name__)

HEARTBEATS_SHOWN = 96
AUDIT_SHOWN = 20
MAX_OVERLAP_HOURS = 720  # as the operator API allows


def own_site(conn: psycopg.Connection[Any], site_id: int) -> sites.Site:
    """The signed-in user's site, or 404 (also for another tenant's site)."""
    site = sites.tenant_site(conn, site_id, me().tenant_id)
    if site is None:
        abort(404, f"There is no site with id {site_id} in your organisation.")
    return site


@dataclass(frozen=True, slots=True)
class _MeterPointRow:
    """A meter joined with one of its points (None for a meter without points) and the
    point's latest reading."""

    meter_id: int
    external_id: str
    meter_name: str
    address: str | None
    device_instance: int | None
    meter_active: bool
    point_id: int | None
    point_name: str | None
    object_type: str | None
    object_instance: int | None
    unit: str | None
    point_active: bool | None
    last_ts: datetime | None
    value: float | None


@dataclass(frozen=True, slots=True)
class PointLatest:
    id: int
    name: str
    object: str  # "analog-input,1"
    unit: str | None
    active: bool
    last_ts: datetime | None
    value: float | None


@dataclass(slots=True)
class MeterLatest:
    id: int
    external_id: str
    name: str
    address: str | None
    device_instance: int | None
    active: bool
    points: list[PointLatest] = field(default_factory=list)
    last_ts: datetime | None = None  # its newest point's


def site_meters(conn: psycopg.Connection[Any], site_id: int) -> list[MeterLatest]:
    """Meters with their points and each point's latest value (``point_latest``, kept by ingest:
    ``central.latest``), so the page costs the same however many readings are stored."""
    with conn.cursor(row_factory=class_row(_MeterPointRow)) as cur:
        rows = cur.execute(
            """SELECT m.id AS meter_id, m.external_id, m.name AS meter_name, m.address,
                      m.device_instance, m.active AS meter_active, p.id AS point_id,
                      p.name AS point_name, p.object_type, p.object_instance, p.unit,
                      p.active AS point_active,
                      pl.ts AS last_ts, pl.value
               FROM meters m LEFT JOIN meter_points p ON p.meter_id = m.id
               LEFT JOIN point_latest pl ON pl.point_id = p.id
               WHERE m.site_id = %(site)s
               ORDER BY m.active DESC, m.external_id, p.active DESC, p.name""",
            {"site": site_id},
        ).fetchall()
    out: dict[int, MeterLatest] = {}
    for r in rows:
        meter = out.get(r.meter_id)
        if meter is None:
            meter = out[r.meter_id] = MeterLatest(
                r.meter_id,
                r.external_id,
                r.meter_name,
                r.address,
                r.device_instance,
                r.meter_active,
            )
        if r.point_id is None:
            continue
        meter.points.append(
            PointLatest(
                id=r.point_id,
                name=r.point_name or "",
                object=f"{r.object_type},{r.object_instance}",
                unit=r.unit,
                active=bool(r.point_active),
                last_ts=r.last_ts,
                value=r.value,
            )
        )
        if r.last_ts is not None and (meter.last_ts is None or r.last_ts > meter.last_ts):
            meter.last_ts = r.last_ts
    return list(out.values())


@dataclass(frozen=True, slots=True)
class HeartbeatSummary:
    """One heartbeat as the site page charts and lists it (None: stored before summaries)."""

    at: datetime
    backlog: int | None
    oldest_unsynced_age_s: float | None
    dropped: int | None
    unreachable: int | None
    meters: int | None
    version: str | None


def heartbeat_history(conn: psycopg.Connection[Any], site_id: int) -> list[HeartbeatSummary]:
    """The latest heartbeats from their summary columns: a few numbers each, never a body."""
    with conn.cursor(row_factory=class_row(HeartbeatSummary)) as cur:
        return cur.execute(
            """SELECT received_at AS at, backlog, oldest_unsynced_age_s,
                      dropped_readings AS dropped, unreachable, meters, version
               FROM heartbeats WHERE site_id = %s ORDER BY received_at DESC LIMIT %s""",
            (site_id, HEARTBEATS_SHOWN),
        ).fetchall()


def meter_states(last_status: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """external_id -> the meter's status in the last heartbeat (state, since, last_error)."""
    meters = (last_status or {}).get("meters") or []
    return {str(m.get("external_id")): m for m in meters if isinstance(m, dict)}


@bp.get("/sites/<int:site_id>")
@require("viewer")
def site(site_id: int) -> str:
    now = datetime.now(UTC)
    with pool().connection() as conn:
        row = own_site(conn, site_id)
        limits = Thresholds.from_config(current_app.config)
        meters = site_meters(conn, site_id)
        beats = heartbeat_history(conn, site_id)
        site_keys = keys.list_keys(conn, site_id)
        site_alerts = views.alerts(conn, me().tenant_id, "firing", site_id=site_id, limit=200)
        changes = audit.about_site(
            conn,
            me().tenant_id,
            site_id,
            meter_ids=[m.id for m in meters],
            key_ids=[k.id for k in site_keys],
            limit=AUDIT_SHOWN,
        )
    last = row.last_heartbeat_at
    chart = {
        "x": [int(b.at.timestamp() * 1000) for b in reversed(beats)],
        "backlog": [b.backlog or 0 for b in reversed(beats)],
        "unreachable": [b.unreachable or 0 for b in reversed(beats)],
    }
    return render_template(
        "ui/site.html",
        site=row,
        state=connectivity(last, now, limits, active=row.active),
        heartbeat_age_s=(now - last).total_seconds() if last else None,
        status=row.last_status or {},
        meter_state=meter_states(row.last_status),
        meters=meters,
        beats=beats,
        chart=chart,
        keys=site_keys,
        audit=changes,
        overlap_hours=current_app.config["KEY_OVERLAP_HOURS"],
        alerts=site_alerts,
        limits=limits,
        now=now,
    )


@bp.route("/sites/new", methods=["GET", "POST"])
@require("admin")
def new_site() -> Response | str | tuple[str, int]:
    if request.method == "GET":
        return render_template("ui/site_new.html", name="")
    user = me()
    name = request.form.get("name", "").strip()
    if not name or len(name) > 200:
        flash("Give the site a name of 1 to 200 characters.", "error")
        return render_template("ui/site_new.html", name=name), 400
    try:
        with pool().connection() as conn, conn.transaction():
            created = sites.create_site(conn, user.tenant_id, name, user.actor)
    except Conflict as err:
        flash(f"{err}; choose another name.", "error")
        return render_template("ui/site_new.html", name=name), 409
    logger.info("site %s (%s) registered by %s", created.site_id, name, user.email)
    return render_template(
        "ui/key_once.html",
        site={"id": created.site_id, "name": created.name},
        key=created.key,
        reason="created",
        expiring=[],
        central_url=request.host_url.rstrip("/"),
    )


def _overlap_hours() -> float:
    raw = request.form.get("overlap_hours", "").strip()
    if not raw:
        return float(current_app.config["KEY_OVERLAP_HOURS"])
    try:
        hours = float(raw)
    except ValueError:
        hours = -1
    if not 0 <= hours <= MAX_OVERLAP_HOURS:
        abort(400, f"Overlap: give hours from 0 to {MAX_OVERLAP_HOURS}.")
    return hours


@bp.post("/sites/<int:site_id>/keys/rotate")
@require("admin")
def rotate_key(site_id: int) -> str:
    user = me()
    hours = _overlap_hours()
    with pool().connection() as conn, conn.transaction():
        row = own_site(conn, site_id)
        new = keys.rotate_key(conn, site_id, timedelta(hours=hours), user.actor)
        expiring = [k for k in keys.list_keys(conn, site_id) if k.usable and k.expires_at]
    logger.info("key of site %s rotated by %s (overlap %s h)", site_id, user.email, hours)
    return render_template(
        "ui/key_once.html",
        site=row,
        key=new,
        reason="rotated",
        overlap_hours=hours,
        expiring=expiring,
        central_url=request.host_url.rstrip("/"),
    )


@bp.post("/sites/<int:site_id>/keys/revoke")
@require("admin")
def revoke_key(site_id: int) -> Response:
    user = me()
    prefix = request.form.get("prefix", "").strip() or None
    with pool().connection() as conn, conn.transaction():
        own_site(conn, site_id)
        try:
            revoked = keys.revoke_keys(conn, site_id, prefix, user.actor)
        except NotFound as err:
            flash(str(err), "error")
            revoked = []
    if revoked:
        logger.info("keys %s of site %s revoked by %s", revoked, site_id, user.email)
        flash(
            f"Revoked {', '.join(revoked)}. The appliance is refused until it gets a new key.",
            "success",
        )
    return redirect(url_for("ui.site", site_id=site_id) + "#keys")
