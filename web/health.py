"""``/health`` without login: for systemd checks, load balancers and a technician's curl."""

from __future__ import annotations

from typing import Any

import psycopg
from flask import Blueprint

from web.database import connection

bp = Blueprint("health", __name__)


@bp.get("/health")
def health() -> tuple[dict[str, Any], int]:
    """Answers 503 when the edge database does not, because then the UI cannot show anything."""
    try:
        with connection() as conn:
            conn.execute("SELECT 1")
    except (psycopg.Error, OSError) as err:
        return {"status": "error", "database": f"unreachable: {err}"}, 503
    return {"status": "ok", "database": "ok"}, 200
