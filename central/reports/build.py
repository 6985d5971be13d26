"""One report's content: the scope resolved, the period's and the previous period's figures,
completeness, daily consumption and the load curve, as one JSON-able document (stored in
``reports.result``; the HTML, PDF and CSV are all made from it)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from central.reports import completeness, figures, scope, snapshot
from central.reports.period import Period

Progress = Callable[[int, str], None]


def _delta(cur: figures.Figures, prev: figures.Figures) -> dict[str, float | None]:
    def pct(a: float | None, b: float | None) -> float | None:
        return None if a is None or not b else 100.0 * (a - b) / b

    return {
        "energy_kwh": cur.energy_kwh - prev.energy_kwh,
        "energy_pct": pct(cur.energy_kwh, prev.energy_kwh),
        "peak_kw": None
        if cur.peak_kw is None or prev.peak_kw is None
        else cur.peak_kw - prev.peak_kw,
        "peak_pct": pct(cur.peak_kw, prev.peak_kw),
    }


def _block(
    cur: figures.Figures,
    prev: figures.Figures,
    period: Period,
    prev_period: Period,
    demand: timedelta,
) -> dict[str, Any]:
    return {
        "figures": cur.as_json(period, demand),
        "previous": prev.as_json(prev_period, demand),
        "delta": _delta(cur, prev),
    }


def _pct(parts: list[completeness.Completeness]) -> float:
    expected = sum(c.expected for c in parts)
    return 100.0 * sum(c.present for c in parts) / expected if expected else 100.0


def build(
    conn: psycopg.Connection[Any],
    tenant_id: int,
    site_ids: list[int] | None,
    *,
    period: Period,
    demand: timedelta,
    progress: Progress = lambda pct, stage: None,
    aligned: bool = True,
    connect: snapshot.Connect | None = None,
) -> dict[str, Any]:
    """The report's content. With ``connect`` (the worker's way), the period's figures, the
    previous period's and completeness are computed at once on their own connections (see
    ``snapshot``); without, one after another on ``conn``."""
    progress(5, "reading the scope")
    sites = scope.resolve(conn, tenant_id, site_ids)
    counters = {
        p.point_id: (s.site_id, f) for s in sites for p in s.points if (f := p.factor) is not None
    }
    previous = period.previous()
    all_points = [p.point_id for s in sites for p in s.points]
    progress(10, "energy, demand and completeness")
    with snapshot.runner(conn, connect, width=3) as run:
        cur_f = run.submit(lambda c: figures.compute(c, counters, period, demand, aligned=aligned))
        prev_f = run.submit(
            lambda c: figures.compute(c, counters, previous, demand, detail=False, aligned=aligned)
        )
        comp_f = run.submit(
            lambda c: completeness.compute(c, all_points, period, demand, aligned=aligned)
        )
        cur, prev, comp = cur_f.result(), prev_f.result(), comp_f.result()
    progress(70, "assembling")

    resets: dict[int, list[dict[str, Any]]] = {}
    for r in cur.resets:
        resets.setdefault(r.point_id, []).append(
            {
                "at": period.local(r.at).isoformat(),
                "count": r.count,
                "before": r.before,
                "after": r.after,
            }
        )
    out_sites = []
    for s in sites:
        meters = [
            {
                "meter_id": p.meter_id,
                "external_id": p.external_id,
                "meter_name": p.meter_name,
                "point": p.name,
                "unit": p.unit,
                **_block(cur.points[p.point_id], prev.points[p.point_id], period, previous, demand),
                "void_intervals": cur.voids.get(p.point_id, 0),
                "resets": resets.get(p.point_id, []),
            }
            for p in s.points
            if p.point_id in counters
        ]
        meters.sort(key=lambda m: -m["figures"]["energy_kwh"])
        series = cur.sites.get(s.site_id)
        out_sites.append(
            {
                "site_id": s.site_id,
                "name": s.name,
                **_block(
                    cur.site_figures(s.site_id),
                    prev.site_figures(s.site_id),
                    period,
                    previous,
                    demand,
                ),
                "completeness_pct": _pct([comp[p.point_id] for p in s.points]),
                "meters": meters,
                "completeness": [
                    {
                        "meter": p.external_id,
                        "meter_name": p.meter_name,
                        "point": p.name,
                        **comp[p.point_id].as_json(period),
                    }
                    for p in s.points
                ],
                "daily": [{"date": d.isoformat(), "kwh": e} for d, e in cur.daily(s.site_id)],
                "curve_kw": [
                    None if v else e / (demand.total_seconds() / 3600)
                    for e, v in zip(series.energy, series.void, strict=True)
                ]
                if series
                else [],
            }
        )
    out_sites.sort(key=lambda s: (-s["figures"]["energy_kwh"], s["name"]))
    ids = [s.site_id for s in sites]
    return {
        "period": period.as_json(),
        "previous_period": previous.as_json(),
        "demand_minutes": int(demand.total_seconds() // 60),
        "generated_at": datetime.now(UTC).isoformat(),
        "fleet": {
            **_block(cur.fleet_figures(ids), prev.fleet_figures(ids), period, previous, demand),
            "completeness_pct": _pct(list(comp.values())),
            "sites": len(sites),
            "meters": len({p.meter_id for s in sites for p in s.points}),
            "counters": len(counters),
        },
        "sites": out_sites,
    }


def summary(result: dict[str, Any]) -> dict[str, Any]:
    """The headline of a report: what the API's status answer and the MCP server show."""
    fleet = result["fleet"]
    return {
        "period": result["period"]["label"],
        "time_zone": result["period"]["time_zone"],
        "sites": fleet["sites"],
        "meters": fleet["meters"],
        **{
            k: fleet["figures"][k]
            for k in ("energy_kwh", "peak_kw", "peak_start", "avg_kw", "load_factor")
        },
        "previous_energy_kwh": fleet["previous"]["energy_kwh"],
        "energy_delta_pct": fleet["delta"]["energy_pct"],
        "completeness_pct": fleet["completeness_pct"],
        "resets": sum(len(m["resets"]) for s in result["sites"] for m in s["meters"]),
        "top_sites": [
            {"site_id": s["site_id"], "name": s["name"], "energy_kwh": s["figures"]["energy_kwh"]}
            for s in result["sites"][:10]
        ],
    }
