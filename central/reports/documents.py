"""The report's documents, all made from the stored result: HTML from the operator UI's own
templates (``ui/report/body.html``), PDF from that HTML with WeasyPrint."""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jinja2
from markupsafe import Markup

from central.reports import charts, fmt

UI = Path(__file__).resolve().parent.parent / "ui"
TEMPLATES = UI / "templates"
CSS = UI / "static" / "report.css"


def site_charts(result: dict[str, Any]) -> dict[int, dict[str, Markup]]:
    """site id -> its three charts as SVG."""
    period = result["period"]
    start = datetime.fromisoformat(period["start"]).astimezone(ZoneInfo(period["time_zone"]))
    step = timedelta(minutes=result["demand_minutes"])
    out = {}
    for s in result["sites"]:
        name = s["name"]
        out[s["site_id"]] = {
            "daily": charts.daily_bars(
                [(d["date"], d["kwh"]) for d in s["daily"]], f"Daily consumption of {name}, kWh"
            ),
            "curve": charts.load_curve(
                s["curve_kw"],
                start,
                step,
                s["figures"]["peak_start"],
                f"Load curve of {name}, kW per {result['demand_minutes']} minutes",
            ),
            "completeness": charts.completeness_bars(
                [(f"{c['meter']} / {c['point']}", c["pct"]) for c in s["completeness"]],
                f"Data completeness of {name}'s data points",
            ),
        }
    return out


def context(result: dict[str, Any]) -> dict[str, Any]:
    return {"r": result, "charts": site_charts(result)}


@cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters.update(fmt.FILTERS)
    return env


def html(result: dict[str, Any]) -> str:
    """The stand-alone document (styles inlined) the PDF is made from."""
    template = _environment().get_template("ui/report/document.html")
    return template.render(css=Markup(CSS.read_text()), **context(result))


def pdf(result: dict[str, Any]) -> bytes:
    import weasyprint  # imported here: it is heavy and only the worker renders PDFs

    document: bytes = weasyprint.HTML(string=html(result), base_url=str(UI)).write_pdf()
    return document
