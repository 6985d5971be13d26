"""The fleet dashboard: every site of the tenant at a glance, filterable, with fleet totals."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from flask import current_app, render_template, request

from central.database import pool
from central.ui import bp
from central.ui.fleet import SiteFigures, Thresholds, power_series, site_figures
from central.ui.users import login_required, me

STATES = ("online", "late", "offline", "never", "inactive")
# the worst first: what needs attention is at the top of the table
STATE_ORDER = {"offline": 0, "late": 1, "never": 2, "online": 3, "inactive": 4}
CHART_HOURS = 24
TOP_SITES = 15


def thresholds() -> Thresholds:
    return Thresholds(
        float(current_app.config["HEARTBEAT_LATE_S"]),
        float(current_app.config["HEARTBEAT_OFFLINE_S"]),
    )


def _matches(site: SiteFigures, query: str, state: str) -> bool:
    if state and site.state != state:
        return False
    return not query or query.casefold() in site.name.casefold()


def _totals(sites: list[SiteFigures]) -> dict[str, Any]:
    counts = {s: 0 for s in STATES}
    for site in sites:
        counts[site.state] += 1
    return {
        "sites": len(sites),
        "states": counts,
        "energy_today": sum(s.energy_today or 0 for s in sites),
        "energy_month": sum(s.energy_month or 0 for s in sites),
        "power_now": sum(s.power_now or 0 for s in sites),
        "meters": sum(s.meters for s in sites),
        "reporting": sum(s.reporting for s in sites),
        "unreachable": sum(len(s.unreachable) for s in sites),
        "backlog": sum(s.backlog or 0 for s in sites),
        "dropped": sum(s.dropped or 0 for s in sites),
    }


@bp.get("/")
@login_required
def dashboard() -> str:
    user = me()
    now = datetime.now(UTC)
    query = request.args.get("q", "").strip()
    state = request.args.get("state", "")
    if state not in STATES:
        state = ""
    limits = thresholds()
    with pool().connection() as conn:
        every = site_figures(conn, user.tenant_id, now, limits)
        shown = [s for s in every if _matches(s, query, state)]
        series = power_series(
            conn, user.tenant_id, [s.site_id for s in shown], now - timedelta(hours=CHART_HOURS)
        )
    shown.sort(key=lambda s: (STATE_ORDER[s.state], s.name.casefold()))
    top = sorted(shown, key=lambda s: s.energy_today or 0, reverse=True)[:TOP_SITES]
    charts = {
        "power": {
            "from": int((now - timedelta(hours=CHART_HOURS)).timestamp() * 1000),
            "to": int(now.timestamp() * 1000),
            "x": [int(h.timestamp() * 1000) for h, _ in series],
            "y": [round(v, 3) for _, v in series],
        },
        "energy_by_site": {
            "labels": [s.name for s in top if s.energy_today],
            "values": [round(s.energy_today or 0, 3) for s in top if s.energy_today],
        },
        "states": {k: v for k, v in _totals(shown)["states"].items() if v},
    }
    return render_template(
        "ui/dashboard.html",
        sites=shown,
        total_sites=len(every),
        totals=_totals(shown),
        charts=charts,
        query=query,
        state=state,
        states=STATES,
        limits=limits,
        now=now,
    )
