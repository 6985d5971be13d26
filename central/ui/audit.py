"""The audit log of the user's tenant: who changed which site, key, meter or user, and when.

Paged by keyset (``before`` = the last id shown) so a long history costs the same per page.
"""

from __future__ import annotations

from flask import render_template, request

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
        rows = conn.execute(
            """SELECT id, at, actor, action, target_type, target_id, details FROM audit_log
               WHERE tenant_id = %(tenant)s
                 AND (%(before)s::bigint IS NULL OR id < %(before)s)
                 AND (%(action)s = '' OR action LIKE %(prefix)s)
               ORDER BY id DESC LIMIT %(limit)s""",
            {
                "tenant": me().tenant_id,
                "before": before,
                "action": action,
                "prefix": action.replace("%", r"\%").replace("_", r"\_") + "%",
                "limit": PAGE + 1,
            },
        ).fetchall()
        actions = [
            r[0]
            for r in conn.execute(
                "SELECT DISTINCT action FROM audit_log WHERE tenant_id = %s ORDER BY 1",
                (me().tenant_id,),
            )
        ]
    more = len(rows) > PAGE
    rows = rows[:PAGE]
    return render_template(
        "ui/audit.html",
        rows=rows,
        actions=actions,
        action=action,
        next_before=rows[-1][0] if more else None,
    )
