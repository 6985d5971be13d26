"""The fleet dashboard: every site of the tenant at a glance, filterable, with fleet totals.

The totals and charts cover every site the filter keeps; the table shows one page of them,
worst first, so a fleet of ten thousand sites is a page of rows a browser (or a phone) can show,
and rendering costs the same whatever the fleet's size.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from flask import current_app, render_template, request

from central.access import require
from central.alerts import views
from central.connectivity import STATES, Thresholds
from central.database import read_pool
from central.fleet import SiteFigures, power_series, site_figures, totals
from central.ui import bp
from central.ui.users import me

# the worst first: what needs attention is at the top of the table
STATE_ORDER = {"offline": 0, "late": 1, "never": 2, "online": 3, "inactive": 4}
CHART_HOURS = 24
TOP_SITES = 15
PAGE_SIZE = 50


@dataclass(frozen=True, slots=True)
class Paging:
    """Which rows of the filtered sites the table shows: ``first``..``last`` (1-based) of
    ``count``, on page ``number`` of ``pages``."""

    number: int
    pages: int
    count: int
    first: int
    last: int


def paging(count: int, asked: str | None, size: int = PAGE_SIZE) -> Paging:
    """The page ``asked`` for (a query argument: anything but a number is the first page, past
    the end is the last), so a bookmarked page of a fleet that shrank still shows rows."""
    pages = max(1, -(-count // size))
    try:
        number = min(max(1, int(asked or 1)), pages)
    except ValueError:
        number = 1
    first = (number - 1) * size
    return Paging(number, pages, count, min(first + 1, count), min(first + size, count))


def _worst_first(
    site: SiteFigures, firing: dict[int, dict[str, int]]
) -> tuple[int, int, int, int, str]:
    """By connectivity, then firing alerts (critical first), then unreachable meters."""
    alerts = firing.get(site.site_id, {})
    return (
        STATE_ORDER[site.state],
        -alerts.get("critical", 0),
        -sum(alerts.values()),
        -len(site.unreachable),
        site.name.casefold(),
    )


def _matches(site: SiteFigures, query: str, state: str) -> bool:
    if state and site.state != state:
        return False
    return not query or query.casefold() in site.name.casefold()


@bp.get("/")
@require("viewer")
def dashboard() -> str:
    user = me()
    now = datetime.now(UTC)
    query = request.args.get("q", "").strip()
    state = request.args.get("state", "")
    if state not in STATES:
        state = ""
    limits = Thresholds.from_config(current_app.config)
    with read_pool().connection() as conn:
        every = site_figures(conn, user.tenant_id, now, limits)
        shown = [s for s in every if _matches(s, query, state)]
        firing = views.firing_by_site(conn, user.tenant_id)
        series = power_series(
            conn,
            user.tenant_id,
            [s.site_id for s in shown],
            now - timedelta(hours=CHART_HOURS),
            now,
        )
    shown.sort(key=lambda s: _worst_first(s, firing))
    page = paging(len(shown), request.args.get("page"))
    fleet = totals(shown)
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
        "states": {k: v for k, v in fleet["states"].items() if v},
    }
    return render_template(
        "ui/dashboard.html",
        sites=shown[page.first - 1 : page.last],
        page=page,
        total_sites=len(every),
        totals=fleet,
        charts=charts,
        query=query,
        state=state,
        states=STATES,
        limits=limits,
        now=now,
        firing=firing,
        firing_total={
            sev: sum(f.get(sev, 0) for f in firing.values())
            for sev in ("critical", "warning", "info")
        },
    )
