"""``/metrics`` for Prometheus on the local UI's port: off unless ``metrics_allow_from`` or
``metrics_token`` opens it (``common.metrics_access``); no login, no session. The figures come
from the edge database (``appliance.metrics``), so every gunicorn worker answers the same."""

from __future__ import annotations

from flask import Blueprint, Response, current_app
from prometheus_client import CONTENT_TYPE_LATEST

from appliance import metrics
from appliance.settings import ApplianceSettings
from common import metrics_access
from common.attempts import TooManyAttempts
from web.database import connection

bp = Blueprint("metrics", __name__)


def _text(message: str, status: int, headers: dict[str, str] | None = None) -> Response:
    return Response(message + "\n", status, headers, content_type="text/plain; charset=utf-8")


@bp.get("/metrics")
def prometheus() -> Response:
    settings: ApplianceSettings = current_app.config["APPLIANCE_SETTINGS"]
    try:
        refused = metrics_access.refusal(settings.metrics_allow_from, settings.metrics_token)
    except TooManyAttempts as err:
        return _text(f"/metrics: {err}", 429, {"Retry-After": str(err.retry_after)})
    if refused is not None:
        headers = {"WWW-Authenticate": 'Bearer realm="metrics"'} if refused.status == 401 else {}
        return _text(refused.message, refused.status, headers)
    with connection() as conn:
        return Response(metrics.render(conn), content_type=CONTENT_TYPE_LATEST)
