"""The report as CSV, for spreadsheets: one row per figure-bearing thing (fleet, site, meter
point), then one per day and site, then one per gap. Text cells a spreadsheet would take as a
formula (starting with = + - @, tab or CR) are quoted with a leading apostrophe; numbers are
written as numbers, so a negative change stays a number."""

from __future__ import annotations

import csv
import io
from typing import Any

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")

COLUMNS = [
    "record",
    "site",
    "meter",
    "point",
    "date",
    "energy_kwh",
    "previous_energy_kwh",
    "energy_change_kwh",
    "energy_change_pct",
    "peak_kw",
    "peak_start",
    "previous_peak_kw",
    "avg_kw",
    "load_factor",
    "completeness_pct",
    "resets",
    "gap_start",
    "gap_end",
    "gap_minutes",
]


def safe(value: Any) -> Any:
    """A cell: text that could run as a formula gets a leading apostrophe."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return "" if value is None else value


def _figures(block: dict[str, Any]) -> dict[str, Any]:
    f, prev, delta = block["figures"], block["previous"], block["delta"]
    return {
        "energy_kwh": f["energy_kwh"],
        "previous_energy_kwh": prev["energy_kwh"],
        "energy_change_kwh": delta["energy_kwh"],
        "energy_change_pct": delta["energy_pct"],
        "peak_kw": f["peak_kw"],
        "peak_start": f["peak_start"],
        "previous_peak_kw": prev["peak_kw"],
        "avg_kw": f["avg_kw"],
        "load_factor": f["load_factor"],
    }


def rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    fleet = result["fleet"]
    out = [{"record": "total", **_figures(fleet), "completeness_pct": fleet["completeness_pct"]}]
    for s in result["sites"]:
        out.append(
            {
                "record": "site",
                "site": s["name"],
                **_figures(s),
                "completeness_pct": s["completeness_pct"],
                "resets": sum(len(m["resets"]) for m in s["meters"]),
            }
        )
        comp = {(c["meter"], c["point"]): c["pct"] for c in s["completeness"]}
        for m in s["meters"]:
            out.append(
                {
                    "record": "meter",
                    "site": s["name"],
                    "meter": m["external_id"],
                    "point": m["point"],
                    **_figures(m),
                    "completeness_pct": comp.get((m["external_id"], m["point"])),
                    "resets": len(m["resets"]),
                }
            )
    for s in result["sites"]:
        for d in s["daily"]:
            out.append(
                {"record": "day", "site": s["name"], "date": d["date"], "energy_kwh": d["kwh"]}
            )
    for s in result["sites"]:
        for c in s["completeness"]:
            for g in c["gaps"]:
                out.append(
                    {
                        "record": "gap",
                        "site": s["name"],
                        "meter": c["meter"],
                        "point": c["point"],
                        "completeness_pct": c["pct"],
                        "gap_start": g["start"],
                        "gap_end": g["end"],
                        "gap_minutes": g["minutes"],
                    }
                )
    return out


def render(result: dict[str, Any]) -> bytes:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, COLUMNS, lineterminator="\r\n")
    writer.writeheader()
    for row in rows(result):
        writer.writerow({k: safe(row.get(k)) for k in COLUMNS})
    return buf.getvalue().encode("utf-8-sig")  # the BOM makes spreadsheets read UTF-8
