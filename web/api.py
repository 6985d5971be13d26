"""``/api/local/*``: the same data and actions as the pages, as JSON, for the pages' own
JavaScript and for scripts (HTTP Basic). Status and actions come from ``appliance.service``."""

from __future__ import annotations

import logging
import math
from datetime import UTC, datetime, timedelta
from typing import Any

import redis
from flask import Blueprint, current_app, request

from appliance import readings_query, service
from appliance.settings import ApplianceSettings
from common.problems import show
from web import queries
from web.database import connection

logger = logging.getLogger(__name__)

bp = Blueprint("api", __name__, url_prefix="/api/local")

Answer = tuple[dict[str, Any], int]
MAX_HOURS = 24 * 366

ACTIONS = {
    "sync_now": service.sync_now,
    "pause_upload": service.pause_upload,
    "resume_upload": service.resume_upload,
    "pause_collection": service.pause_collection,
    "resume_collection": service.resume_collection,
}


def settings() -> ApplianceSettings:
    value: ApplianceSettings = current_app.config["APPLIANCE_SETTINGS"]
    return value


def _now() -> datetime:
    return datetime.now(UTC)


def meters_with_values(include_inactive: bool = False) -> list[dict[str, Any]]:
    """Every (active) meter's status with the newest value of each of its active points."""
    # both on the request's pooled connection: connecting anew for the status cost more than
    # running the two short queries one after the other
    with connection() as conn:
        meters = service.get_meter_status(settings(), include_inactive, conn)
        values = queries.latest_values(conn)
    return [{**m, "values": values.get(m["meter_id"], [])} for m in meters]


def meters_with_values_all() -> list[dict[str, Any]]:
    return meters_with_values(include_inactive=True)


@bp.get("/meters")
def meters() -> Answer:
    """Every active meter: connectivity, since when, last error, newest values with units."""
    return {"now": _now(), "meters": meters_with_values()}, 200


@bp.get("/meters/<external_id>")
def one_meter(external_id: str) -> Answer:
    found = [m for m in meters_with_values_all() if m["external_id"] == external_id]
    if not found:
        return {"error": f"no meter {external_id!r} on this appliance"}, 404
    return {"now": _now(), "meter": found[0]}, 200


def _window() -> tuple[datetime | None, datetime | None]:
    """``start``/``end``, or ``hours`` back from now (what the charts ask for)."""
    hours = request.args.get("hours")
    if hours:
        try:
            value = float(hours)
        except ValueError:
            value = math.nan
        # a span past the year back from now is no chart, and 1e9 hours overflows a datetime
        if not 0 < value <= MAX_HOURS:
            raise readings_query.ReadingsQueryError(
                f"hours={show(hours)}: expected a number of hours above 0, at most {MAX_HOURS}"
            )
        end = _now()
        return end - timedelta(hours=value), end
    return (
        queries.parse_time(request.args.get("start"), "start"),
        queries.parse_time(request.args.get("end"), "end"),
    )


def _query_error(err: readings_query.ReadingsQueryError) -> Answer:
    unknown = isinstance(err, readings_query.UnknownMeter | readings_query.UnknownPoint)
    return {"error": str(err)}, 404 if unknown else 400


@bp.get("/readings")
def readings() -> Answer:
    """Raw readings, one page at a time: ``meter``, ``point`` (optional), ``start`` and ``end``
    (or ``hours``), ``limit`` (default 500), ``cursor`` from the previous page."""
    meter = request.args.get("meter", "")
    if not meter:
        return {"error": "give meter=<external id>"}, 400
    try:
        start, end = _window()
        if start is None or end is None:
            raise readings_query.ReadingsQueryError(
                "give start and end (ISO 8601 with a time zone) or hours; "
                "unbounded queries are refused"
            )
        limit = int(request.args.get("limit", "500"))
        with connection() as conn:
            page = readings_query.query_readings(
                conn,
                meter,
                point=request.args.get("point") or None,
                start=start,
                end=end,
                limit=limit,
                cursor=request.args.get("cursor") or None,
            )
    except readings_query.ReadingsQueryError as err:
        return _query_error(err)
    except ValueError:
        return {"error": f"limit={request.args.get('limit')!r}: expected a whole number"}, 400
    return dict(page), 200


@bp.get("/series")
def series() -> Answer:
    """A chart's data: one point averaged per time bucket (``meter``, ``point``, ``hours`` or
    ``start``/``end``, ``buckets``)."""
    meter, point = request.args.get("meter", ""), request.args.get("point", "")
    if not meter or not point:
        return {"error": "give meter=<external id> and point=<data point name>"}, 400
    try:
        start, end = _window()
        if start is None or end is None:
            raise readings_query.ReadingsQueryError("give hours, or start and end")
        buckets = int(request.args.get("buckets", str(queries.DEFAULT_BUCKETS)))
        if not 10 <= buckets <= 2000:
            raise readings_query.ReadingsQueryError(f"buckets={buckets}: expected 10 to 2000")
        with connection() as conn:
            data = queries.series(conn, meter, point, start, end, max_buckets=buckets)
    except readings_query.ReadingsQueryError as err:
        return _query_error(err)
    except ValueError:
        return {"error": "buckets: expected a whole number"}, 400
    return dict(data), 200


def sync_overview() -> dict[str, Any]:
    """Everything the sync page shows, in one answer."""
    s = settings()
    return {
        "now": _now(),
        **service.get_sync_status(s),
        "quarantine": service.get_quarantine(s, limit=50),
    }


@bp.get("/sync-status")
def sync_status() -> Answer:
    return sync_overview(), 200


def _queue_down(err: Exception) -> Answer:
    logger.error("cannot queue a job: Redis at %s fails (%s)", settings().redis_url, err)
    return {
        "error": f"the job queue (Redis) does not answer: {err}; "
        "check that redis-server and meterit-worker are running"
    }, 503


@bp.post("/sync-trigger")
def sync_trigger() -> Answer:
    """``{"action": "sync_now"}`` (the default) or pause/resume of upload or collection."""
    body = request.get_json(silent=True) or {}
    action = body.get("action") or request.form.get("action") or "sync_now"
    if action not in ACTIONS:
        return {"error": f"action {action!r}: expected one of {', '.join(ACTIONS)}"}, 400
    try:
        result = ACTIONS[action](settings())
    except redis.RedisError as err:
        return _queue_down(err)
    key = "job_id" if action == "sync_now" else "changed"
    return {"action": action, key: result, "status": sync_overview()}, 202


@bp.get("/meter-sync-status")
def meter_sync_status() -> Answer:
    return dict(service.get_meter_sync_status(settings())), 200


@bp.post("/meter-sync-trigger")
def meter_sync_trigger() -> Answer:
    """Queue a meter-config pull; answers 409 at once when one is already running or the
    appliance is not enrolled, so the button can say why instead of spinning."""
    s = settings()
    current = service.get_meter_sync_status(s)
    last = current["last_attempt"]
    if current["running"] and current["last_run"] is not None:
        since = current["last_run"]["started_at"].astimezone(UTC)
        return (
            {
                "error": f"a meter sync is already running (since {since:%H:%M:%S} UTC); "
                "wait for it to finish",
                "status": current,
            }
        ), 409
    if not (s.central_url and s.api_key):
        return (
            {
                "error": "this appliance is not enrolled with central (central_url and api_key "
                "unset); meters come from the local meters file",
                "status": current,
            }
        ), 409
    try:
        job_id = service.meter_sync_now(s)
    except redis.RedisError as err:
        return _queue_down(err)
    return {"job_id": job_id, "after_id": last["id"] if last else 0, "status": current}, 202
