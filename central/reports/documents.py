"""The report's documents, all made from the stored result: HTML from the operator UI's own
templates (``ui/report/body.html``), PDF from that HTML with WeasyPrint (its charts as SVG images)."""

from __future__ import annotations

import base64
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


def _inline(svg: Markup, title: str) -> Markup:
    return svg


def _image(svg: Markup, title: str) -> Markup:
    """A chart as an SVG image, for WeasyPrint: inline, every element of it would go through the
    document's CSS cascade (half the elements of a 1,000-meter report, a sixth of the PDF's
    time); as an image, only WeasyPrint's SVG reader reads it. The page keeps them inline."""
    data = base64.b64encode(str(svg).encode()).decode("ascii")
    return Markup('<img class="chart" alt="{}" src="data:image/svg+xml;base64,{}">').format(
        title, data
    )


def site_charts(result: dict[str, Any], for_print: bool = False) -> dict[int, dict[str, Markup]]:
    """site id -> its three charts as SVG (as SVG images ``for_print``)."""
    period = result["period"]
    start = datetime.fromisoformat(period["start"]).astimezone(ZoneInfo(period["time_zone"]))
    step = timedelta(minutes=result["demand_minutes"])
    chart = _image if for_print else _inline
    out = {}
    for s in result["sites"]:
        name = s["name"]
        titles = {
            "daily": f"Daily consumption of {name}, kWh",
            "curve": f"Load curve of {name}, kW per {result['demand_minutes']} minutes",
            "completeness": f"Data completeness of {name}'s data points",
        }
        out[s["site_id"]] = {
            "daily": chart(
                charts.daily_bars([(d["date"], d["kwh"]) for d in s["daily"]], titles["daily"]),
                titles["daily"],
            ),
            "curve": chart(
                charts.load_curve(
                    s["curve_kw"], start, step, s["figures"]["peak_start"], titles["curve"]
                ),
                titles["curve"],
            ),
            "completeness": chart(
                charts.completeness_bars(
                    [(f"{c['meter']} / {c['point']}", c["pct"]) for c in s["completeness"]],
                    titles["completeness"],
                ),
                titles["completeness"],
            ),
        }
    return out


def context(result: dict[str, Any], for_print: bool = False) -> dict[str, Any]:
    return {"r": result, "charts": site_charts(result, for_print)}


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
    return template.render(css=Markup(CSS.read_text()), **context(result, for_print=True))


def pdf(result: dict[str, Any]) -> bytes:
    import weasyprint  # imported here: it is heavy and only the worker renders PDFs

    document: bytes = weasyprint.HTML(string=html(result), base_url=str(UI)).write_pdf()
    return document
