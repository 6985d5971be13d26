"""The report's charts as SVG, drawn on the server: the same markup works in the browser and
in WeasyPrint's PDF, needs no script (the UI's CSP allows none inline) and is testable as text.
Colours are presentation attributes, not ``style``, which the CSP would refuse."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from markupsafe import Markup, escape

WIDTH, HEIGHT = 720, 220
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 22, 30
BAR = "#2f6fb0"
LINE = "#2f6fb0"
PEAK = "#c0392b"
GRID = "#d9dee4"
TEXT = "#4a5560"
MAX_CURVE_POINTS = 744  # a month of hours; finer curves keep each bucket's highest value


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    exp = 10.0 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * exp:
            return float(step * exp)
    return 10.0 * exp


def _frame(top: float, unit: str, title: str) -> list[str]:
    h = HEIGHT - TOP - BOTTOM
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'width="100%" role="img" aria-label="{escape(title)}" class="chart">',
        f"<title>{escape(title)}</title>",
    ]
    for i in range(5):
        y = TOP + h - h * i / 4
        parts.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="{GRID}"/>'
        )
        parts.append(
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11" '
            f'fill="{TEXT}">{top * i / 4:,.0f}</text>'
        )
    parts.append(
        f'<text x="{LEFT - 6}" y="11" text-anchor="end" font-size="11" '
        f'fill="{TEXT}">{escape(unit)}</text>'
    )
    return parts


def daily_bars(days: list[tuple[str, float]], title: str) -> Markup:
    """Consumption per local day; ``days`` as (ISO date, kWh)."""
    top = _nice_max(max((v for _, v in days), default=0.0))
    parts = _frame(top, "kWh", title)
    h = HEIGHT - TOP - BOTTOM
    slot = (WIDTH - LEFT - RIGHT) / max(len(days), 1)
    every = max(1, math.ceil(len(days) / 16))
    for i, (day, value) in enumerate(days):
        bar_h = h * value / top
        x = LEFT + i * slot
        parts.append(
            f'<rect x="{x + slot * 0.15:.1f}" y="{TOP + h - bar_h:.1f}" width="{slot * 0.7:.1f}" '
            f'height="{bar_h:.1f}" fill="{BAR}"><title>{day}: {value:,.1f} kWh</title></rect>'
        )
        if i % every == 0:
            parts.append(
                f'<text x="{x + slot / 2:.1f}" y="{HEIGHT - 10}" text-anchor="middle" '
                f'font-size="11" fill="{TEXT}">{day[8:10]}/{day[5:7]}</text>'
            )
    parts.append("</svg>")
    return Markup("".join(parts))


def load_curve(
    kw: list[float | None], start: datetime, step: timedelta, peak_start: str | None, title: str
) -> Markup:
    """Demand per interval as a line, the peak marked. Void or missing intervals break the line."""
    n = len(kw)
    bucket = max(1, math.ceil(n / MAX_CURVE_POINTS))
    values: list[float | None] = []
    for i in range(0, n, bucket):
        chunk = [v for v in kw[i : i + bucket] if v is not None]
        values.append(max(chunk) if chunk else None)
    top = _nice_max(max((v for v in values if v is not None), default=0.0))
    parts = _frame(top, "kW", title)
    h = HEIGHT - TOP - BOTTOM
    span = WIDTH - LEFT - RIGHT
    m = max(len(values) - 1, 1)

    def xy(i: float, v: float) -> str:
        return f"{LEFT + span * i / m:.1f},{TOP + h - h * v / top:.1f}"

    run: list[str] = []
    for i, v in enumerate([*values, None]):
        if v is None:
            if len(run) > 1:
                parts.append(
                    f'<polyline points="{" ".join(run)}" fill="none" stroke="{LINE}" '
                    'stroke-width="1.2"/>'
                )
            run = []
        else:
            run.append(xy(i, v))
    # a few time labels along the axis, in the report's zone
    for k in range(5):
        i = round((len(values) - 1) * k / 4)
        ts = start + step * i * bucket
        anchor = "start" if k == 0 else "end" if k == 4 else "middle"
        parts.append(
            f'<text x="{LEFT + span * i / m:.1f}" y="{HEIGHT - 10}" text-anchor="{anchor}" '
            f'font-size="11" fill="{TEXT}">{ts:%d/%m %H:%M}</text>'
        )
    if peak_start:
        peak_at = datetime.fromisoformat(peak_start)
        i_peak = int((peak_at - start) / step)
        v_peak = kw[i_peak] if 0 <= i_peak < n else None
        if v_peak is not None:
            x, y = xy(i_peak / bucket, v_peak).split(",")
            anchor = "end" if float(x) > WIDTH * 0.7 else "start"
            dx = -8 if anchor == "end" else 8
            parts.append(
                f'<circle cx="{x}" cy="{y}" r="4.5" fill="{PEAK}" class="peak"/>'
                f'<text x="{float(x) + dx:.1f}" y="{max(float(y) + 4, TOP + 10):.1f}" '
                f'text-anchor="{anchor}" font-size="11" font-weight="bold" fill="{PEAK}">'
                f"peak {v_peak:,.1f} kW, {peak_at:%d/%m %H:%M}</text>"
            )
    parts.append("</svg>")
    return Markup("".join(parts))


def completeness_bars(rows: list[tuple[str, float]], title: str) -> Markup:
    """One horizontal bar per data point: the % of intervals with readings."""
    row_h = 18
    height = TOP + row_h * len(rows) + 8
    label_w = 220
    span = WIDTH - label_w - 60
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" width="100%" '
        f'role="img" aria-label="{escape(title)}" class="chart">',
        f"<title>{escape(title)}</title>",
    ]
    for i, (label, pct) in enumerate(rows):
        y = TOP + i * row_h
        colour = "#2e8b57" if pct >= 99 else "#e0a100" if pct >= 90 else PEAK
        parts.append(
            f'<text x="{label_w - 8}" y="{y + 12}" text-anchor="end" font-size="11" '
            f'fill="{TEXT}">{escape(label[:40])}</text>'
            f'<rect x="{label_w}" y="{y + 2}" width="{span}" height="{row_h - 6}" fill="{GRID}"/>'
            f'<rect x="{label_w}" y="{y + 2}" width="{span * pct / 100:.1f}" '
            f'height="{row_h - 6}" fill="{colour}"/>'
            f'<text x="{label_w + span + 6}" y="{y + 12}" font-size="11" '
            f'fill="{TEXT}">{pct:.1f} %</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))
