"""The operator UI: server-rendered pages for people in a browser (dashboard, sites, explorer).

It is one blueprint with its views split by page (``dashboard``, ``sites``, ``meters``,
``explorer``, ``audit``, ``account``). Registering the blueprint also sets up what only the UI
needs, so ``create_app`` adds a single line:

* **Sessions** (Flask-Login): the cookie is honoured by these views only; the JSON API keeps its
  own header authentication (``central.auth``, ``central.sync_auth``).
* **CSRF** (Flask-WTF): checked on every unsafe request to these views. It is *not* switched on
  app-wide, because the other blueprints (sync API, operator API, and whatever comes later)
  authenticate with headers a foreign page cannot make a browser send, so a CSRF token would
  protect nothing there and would break every appliance and script.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, render_template, request
from flask.blueprints import BlueprintSetupState
from flask_wtf.csrf import CSRFError, CSRFProtect  # type: ignore[import-untyped]
from werkzeug.exceptions import HTTPException

from central.access import identify
from central.ui import users

bp = Blueprint(
    "ui",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/ui/static",
)
identify(bp, users.signed_in)

csrf = CSRFProtect()

UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@bp.record_once
def _setup(state: BlueprintSetupState) -> None:
    app = state.app
    # CSRF only where a session cookie authenticates: see the module docstring
    app.config.setdefault("WTF_CSRF_CHECK_DEFAULT", False)
    app.config.setdefault("WTF_CSRF_TIME_LIMIT", None)  # the token lives as long as the session
    csrf.init_app(app)
    users.login_manager.init_app(app)


@bp.before_request
def _protect() -> None:
    if request.method in UNSAFE:
        csrf.protect()


@bp.after_request
def _headers(response: Response) -> Response:
    # pages are per user and may carry a one-time API key: never cache them anywhere (the other
    # security headers are app-wide: ``common.http_headers``)
    if response.mimetype == "text/html":
        response.headers["Cache-Control"] = "no-store"
    return response


@bp.errorhandler(CSRFError)
def _csrf_error(err: CSRFError) -> tuple[str, int]:
    return render_template(
        "ui/error.html",
        code=400,
        title="The form expired",
        message="The page was open too long or came from elsewhere. Reload it and try again.",
    ), 400


def _page_error(err: HTTPException) -> tuple[str, int]:
    code = err.code or 500
    titles = {403: "Not allowed", 404: "Not found", 405: "Not allowed"}
    return render_template(
        "ui/error.html", code=code, title=titles.get(code, err.name), message=err.description
    ), code


for _code in (403, 404, 405):
    bp.register_error_handler(_code, _page_error)


@bp.app_template_filter("ago")
def _ago(seconds: Any) -> str:
    return users.format_age(seconds)


@bp.app_template_filter("n")
def _number(value: Any, digits: int = 1) -> str:
    """A figure with thousands separators, or a dash for no value. A filter, not a macro:
    the dashboard formats a few thousand of them and a Jinja macro call costs ten times more."""
    return "—" if value is None else f"{value:,.{digits}f}"


# the views register themselves on ``bp``
from central.ui import (  # noqa: E402
    account,
    accounts,
    alert_rules,
    alerts,
    audit,
    dashboard,
    explorer,
    mcp_tokens,
    meters,
    reports,
    silences,
    sites,
)

__all__ = [
    "account",
    "accounts",
    "alert_rules",
    "alerts",
    "audit",
    "bp",
    "dashboard",
    "explorer",
    "mcp_tokens",
    "meters",
    "reports",
    "silences",
    "sites",
]
