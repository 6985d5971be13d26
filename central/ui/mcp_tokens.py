"""MCP tokens in the operator UI: each user makes and revokes their own (admins see and revoke
every token of the tenant). A new token is shown once, with the set-up for an assistant."""

from __future__ import annotations

import logging

from flask import abort, current_app, flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from central import mcp_tokens
from central.access import require
from central.database import pool
from central.domain_errors import NotFound
from central.extensions import limiter
from central.ui import bp
from central.ui.users import me
from central.users import can

logger = logging.getLogger(__name__)


@bp.get("/account/mcp-tokens")
@require("viewer")
def mcp_token_list() -> str:
    user = me()
    with pool().connection() as conn:
        found = mcp_tokens.list_tokens(
            conn, user.tenant_id, None if can(user.role, "admin") else user.user_id
        )
    return render_template("ui/mcp_tokens.html", tokens=found, mcp_url=_mcp_url())


@bp.post("/account/mcp-tokens")
@require("viewer")
@limiter.limit("10/minute")
def mcp_token_create() -> str | tuple[str, int]:
    user = me()
    try:
        with pool().connection() as conn, conn.transaction():
            new = mcp_tokens.create_token(
                conn, user.user_id, user.tenant_id, request.form.get("name", ""), user.actor
            )
            found = mcp_tokens.list_tokens(conn, user.tenant_id, user.user_id)
    except ValueError as err:
        flash(str(err), "error")
        return render_template("ui/mcp_tokens.html", tokens=[], mcp_url=_mcp_url()), 400
    logger.info("MCP token %s made for %s", new.prefix, user.email)
    return render_template(
        "ui/mcp_tokens.html", tokens=found, new=new, mcp_url=_mcp_url(), role=user.role
    )


@bp.post("/account/mcp-tokens/<int:token_id>/revoke")
@require("viewer")
def mcp_token_revoke(token_id: int) -> Response:
    user = me()
    try:
        with pool().connection() as conn, conn.transaction():
            prefix = mcp_tokens.revoke_token(
                conn,
                user.tenant_id,
                token_id,
                user.actor,
                user_id=None if can(user.role, "admin") else user.user_id,
            )
    except NotFound:
        abort(404, "No such MCP token of yours, or it is already revoked.")
    flash(f"MCP token {prefix} revoked: its next request is refused.", "success")
    return redirect(url_for("ui.mcp_token_list"))


def _mcp_url() -> str:
    """Where assistants reach the MCP server: central's public host on the MCP port."""
    from urllib.parse import urlsplit

    public = urlsplit(str(current_app.config.get("PUBLIC_URL", "http://127.0.0.1:8000")))
    port = str(current_app.config.get("MCP_BIND", "127.0.0.1:8766")).rpartition(":")[2]
    return f"{public.scheme}://{public.hostname}:{port}/mcp"
