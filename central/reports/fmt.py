"""How report figures are written, the same in the page, the PDF and the e-mail: Jinja filters
registered by the UI and by the worker's template environment."""

from __future__ import annotations

from datetime import datetime
from typing import Any


def number(value: Any, digits: int = 1) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def signed(value: Any, digits: int = 1, suffix: str = "") -> str:
    """A change, always with its sign: +1.2 % or minus 3.0 %, or a dash when there is nothing to compare."""
    if value is None:
        return "—"
    text = f"{abs(value):,.{digits}f}{suffix}"
    return ("+" if value >= 0 else "\N{MINUS SIGN}") + text


def when(value: Any) -> str:
    """A local ISO timestamp as '25 Oct 2026 02:30 (UTC+01:00)': the offset tells the two
    02:30s of the night clocks go back apart."""
    if not value:
        return "—"
    ts = datetime.fromisoformat(value)
    offset = ts.strftime("%z")
    return f"{ts.day} {ts:%b %Y %H:%M} (UTC{offset[:3]}:{offset[3:]})"


def minutes(value: Any) -> str:
    m = int(value)
    if m < 60:
        return f"{m} min"
    if m < 1440:
        return f"{m // 60} h {m % 60:02d} min" if m % 60 else f"{m // 60} h"
    return f"{m / 1440:.1f} days"


FILTERS = {"rn": number, "signed": signed, "when": when, "minutes": minutes}
