"""The three pages: dashboard (every meter), one meter, and sync.

Each page is rendered with its data embedded as JSON, so it paints complete at once; the
page's script then keeps it current by polling the ``/api/local`` endpoints, without reloads.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import redis
from flask import (
    Blueprint,
    Flask,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from werkzeug.exceptions import HTTPException, InternalServerError
from werkzeug.wrappers.response import Response

from appliance import doctor as appliance_doctor
from appliance import service
from appliance.sync import banners
from common import doctor
from web import api

logger = logging.getLogger(__name__)

bp = Blueprint("pages", __name__)

ACTION_DONE = {
    "sync_now": "Upload run queued: the backlog drains in the background.",
    "pause_upload": "Upload paused: readings are kept on the appliance.",
    "resume_upload": "Upload resumed.",
    "pause_collection": "Collection paused: the meters are no longer polled.",
    "resume_collection": "Collection resumed.",
}


def _common() -> dict[str, Any]:
    s = api.settings()
    return {
        "banners": banners.banners(
            service.get_sync_status(s),
            api._now(),
            timedelta(minutes=s.banner_unreachable_minutes),
            s.banner_backlog_readings,
        ),
        "poll_ms": current_app.config["POLL_INTERVAL_MS"],
        "retention_days": s.retention_days,
        "poll_interval_s": s.poll_interval_s,
    }


@bp.get("/")
def dashboard() -> str:
    data = {"now": api._now(), "meters": api.meters_with_values()}
    return render_template("dashboard.html", data=data, **_common())


@bp.get("/meters/<external_id>")
def meter(external_id: str) -> str:
    found = [m for m in api.meters_with_values_all() if m["external_id"] == external_id]
    if not found:
        abort(404, f"no meter {external_id!r} on this appliance")
    data = {"now": api._now(), "meter": found[0]}
    return render_template("meter.html", data=data, meter=found[0], **_common())


@bp.get("/sync")
def sync() -> str:
    data = {
        "sync": api.sync_overview(),
        "meter_sync": service.get_meter_sync_status(api.settings()),
    }
    return render_template("sync.html", data=data, **_common())


@bp.get("/checks")
def health() -> str:
    """The Health page: ``meterit-appliance doctor``'s checks, run on each visit."""
    results = doctor.run(appliance_doctor.checks(api.settings()))
    worst = {0: "ok", 1: "warn", 2: "fail"}[doctor.exit_status(results)]
    return render_template("health.html", checks=results, worst=worst, **_common())


@bp.post("/sync/action")
def sync_action() -> Response:
    """The sync page's buttons without JavaScript: act, then show the page again."""
    action = request.form.get("action", "")
    if action not in api.ACTIONS:
        abort(400, f"unknown action {action!r}")
    try:
        api.ACTIONS[action](api.settings())
        flash(ACTION_DONE[action], "info")
    except redis.RedisError as err:
        flash(f"The job queue (Redis) does not answer: {err}.", "error")
    return redirect(url_for("pages.sync"))


def _error_page(err: Any) -> tuple[str, int] | tuple[dict[str, str], int]:
    code = getattr(err, "code", 500) or 500
    message = getattr(err, "description", "") or "Something went wrong."
    if request.path.startswith("/api/"):
        # the JSON API answers JSON whatever happened, so scripts can read the reason
        return {"error": message}, code
    return render_template("error.html", title=f"Error {code}", message=message), code


def _unexpected(err: Exception) -> tuple[str, int] | tuple[dict[str, str], int]:
    if isinstance(err, HTTPException):
        return _error_page(err)
    logger.exception("unhandled error on %s: %s", request.path, err)
    return _error_page(InternalServerError("Internal error; the journal has the details."))


def init_app(app: Flask) -> None:
    for code in (400, 404, 405):
        app.register_error_handler(code, _error_page)
    app.register_error_handler(Exception, _unexpected)
