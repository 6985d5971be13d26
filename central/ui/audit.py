"""The audit log of the user's tenant: who changed which site, key, meter or user, and when.

Paged by keyset (``before`` = the last id shown) so a long history costs the same per page.
"""

from __future__ import annotations

from flask import render_template, request

from central import audit as audit_log
from central.access import require
from central.database import pool
from central.ui import bp
from central.ui.users import me

PAGE = 50


@bp.get("/audit")
@require("viewer")
def audit() -> str:
    before = request.args.get("before", type=int)
    action = request.args.get("action", "").strip()
    with pool().connection() as conn:
        rows = audit_log.page(
            conn, me().tenant_id, before=before, action_prefix=action, limit=PAGE + 1
        )
        actions = audit_log.actions(conn, me().tenant_id)
    more = len(rows) > PAGE
    rows = rows[:PAGE]
    return render_template(
        "ui/audit.html",
        rows=rows,
        actions=actions,
        action=action,
        next_before=rows[-1].id if more else None,
    )
