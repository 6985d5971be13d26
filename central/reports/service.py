"""The reports' domain API: what the operator API, the UI and the central MCP server call.

``request_report`` only records the request; the central worker picks it up within seconds
(``central.reports.runner``), so no web request ever computes a report. ``get_report`` answers
status, progress and, once done, the headline figures.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from central import audit
from central.reports import scope
from central.reports.period import Period
from central.reports.request import ReportSpec, parse
from central.reports.units import DEFAULT_DEMAND_MINUTES

MAX_UNFINISHED = 5  # per tenant: queued or running reports at once
FILE_TYPES = {"pdf": "application/pdf", "csv": "text/csv; charset=utf-8"}


class TooMany(RuntimeError):
    """The tenant already has MAX_UNFINISHED reports waiting or running."""


STATUS_COLUMNS = """id, status, progress, stage, error, period_kind, first_day, last_day, time_zone,
    demand_minutes, scope, requested_by, schedule_id, requested_at, started_at, finished_at,
    summary"""


def _status(row: Any) -> dict[str, Any]:
    period = Period(row[5], row[6], row[7], row[8])
    out = {
        "id": row[0],
        "status": row[1],
        "progress": row[2],
        "stage": row[3],
        "error": row[4],
        "period": {
            "kind": period.kind,
            "first_day": period.first_day.isoformat(),
            "last_day": period.last_day.isoformat(),
            "label": period.label,
        },
        "time_zone": row[8],
        "demand_minutes": row[9],
        "scope": row[10],
        "requested_by": row[11],
        "schedule_id": row[12],
        "requested_at": row[13].isoformat(),
        "started_at": row[14].isoformat() if row[14] else None,
        "finished_at": row[15].isoformat() if row[15] else None,
        "summary": row[16],
        "files": list(FILE_TYPES) if row[1] == "done" else [],
    }
    return out


def submit(
    conn: psycopg.Connection[Any],
    tenant_id: int,
    spec: ReportSpec,
    actor: str,
    schedule_id: int | None = None,
) -> int:
    """Record a checked request; ScopeError for a site the tenant does not have, TooMany when
    the tenant's queue is full (schedules are exempt: they must not be lost to a busy day)."""
    scope.resolve(conn, tenant_id, spec.site_ids)  # every site must be the tenant's
    if schedule_id is None:
        busy = conn.execute(
            "SELECT count(*) FROM reports WHERE tenant_id = %s AND status IN ('queued', 'running')",
            (tenant_id,),
        ).fetchone()
        if busy and busy[0] >= MAX_UNFINISHED:
            raise TooMany(
                f"{busy[0]} reports are already waiting or running; try again when one is done"
            )
    p = spec.period
    row = conn.execute(
        """INSERT INTO reports (tenant_id, schedule_id, requested_by, scope, period_kind,
               first_day, last_day, time_zone, demand_minutes)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id""",
        (
            tenant_id,
            schedule_id,
            actor,
            Jsonb({"site_ids": spec.site_ids}),
            p.kind,
            p.first_day,
            p.last_day,
            p.time_zone,
            spec.demand_minutes,
        ),
    ).fetchone()
    assert row is not None
    report_id = int(row[0])
    audit.record(
        conn,
        tenant_id,
        actor,
        "report.request",
        ("report", report_id),
        details={"period": p.label, "time_zone": p.time_zone, "site_ids": spec.site_ids},
    )
    return report_id


def request_report(
    conn: psycopg.Connection[Any],
    tenant_id: int,
    scope: Any,
    period: Any,
    time_zone: Any,
    *,
    demand_minutes: int = DEFAULT_DEMAND_MINUTES,
    actor: str,
) -> int:
    """Request a report from raw arguments (as an API body or an MCP tool call has them):
    ``scope`` {"site_ids": [...] or null for every site}, ``period`` {"kind": "day" | "week" |
    "month" | "custom", "day": "YYYY-MM-DD", "last_day": "YYYY-MM-DD" for custom}.
    Returns the report's id; RequestError / ScopeError / TooMany say what is wrong."""
    spec = parse(scope, period, time_zone, demand_minutes)
    return submit(conn, tenant_id, spec, actor)


def request_from_body(
    conn: psycopg.Connection[Any], tenant_id: int, body: dict[str, Any], actor: str
) -> int:
    """``request_report`` from one request body {scope, period, time_zone, demand_minutes}, as
    the operator API's JSON and the UI's form both give it (like ``schedules.create``)."""
    return request_report(
        conn,
        tenant_id,
        body.get("scope"),
        body.get("period"),
        body.get("time_zone"),
        demand_minutes=body.get("demand_minutes", DEFAULT_DEMAND_MINUTES),
        actor=actor,
    )


def get_report(
    conn: psycopg.Connection[Any], tenant_id: int, report_id: int
) -> dict[str, Any] | None:
    """Status, progress and (when done) the summary of a report of the tenant, else None."""
    row = conn.execute(
        f"SELECT {STATUS_COLUMNS} FROM reports WHERE id = %s AND tenant_id = %s",
        (report_id, tenant_id),
    ).fetchone()
    return None if row is None else _status(row)


def list_reports(
    conn: psycopg.Connection[Any], tenant_id: int, *, limit: int = 20, before: int | None = None
) -> list[dict[str, Any]]:
    """The tenant's reports, newest first, ``limit`` at a time (keyset: ``before`` an id)."""
    rows = conn.execute(
        f"""SELECT {STATUS_COLUMNS} FROM reports
            WHERE tenant_id = %s AND (%s::bigint IS NULL OR id < %s)
            ORDER BY id DESC LIMIT %s""",
        (tenant_id, before, before, limit),
    ).fetchall()
    return [_status(r) for r in rows]


def get_result(
    conn: psycopg.Connection[Any], tenant_id: int, report_id: int
) -> dict[str, Any] | None:
    """Every figure of a finished report (what the documents are made from), else None."""
    row = conn.execute(
        "SELECT result FROM reports WHERE id = %s AND tenant_id = %s AND status = 'done'",
        (report_id, tenant_id),
    ).fetchone()
    return None if row is None else dict(row[0])


def get_file(
    conn: psycopg.Connection[Any], tenant_id: int, report_id: int, kind: str
) -> bytes | None:
    row = conn.execute(
        """SELECT f.content FROM report_files f JOIN reports r ON r.id = f.report_id
           WHERE f.report_id = %s AND r.tenant_id = %s AND f.kind = %s""",
        (report_id, tenant_id, kind),
    ).fetchone()
    return None if row is None else bytes(row[0])


def file_name(status: dict[str, Any], kind: str) -> str:
    p = status["period"]
    first: str = p["first_day"]
    span = first if p["kind"] == "day" else f"{first}_{p['last_day']}"
    return f"meterit-energy-report-{status['id']}-{span}.{kind}"


def download_headers(status: dict[str, Any], kind: str) -> dict[str, str]:
    """The headers of a report file's download, the same from the operator API and the UI."""
    return {
        "Content-Type": FILE_TYPES[kind],
        "Content-Disposition": f'attachment; filename="{file_name(status, kind)}"',
        "X-Content-Type-Options": "nosniff",
    }
