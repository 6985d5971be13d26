"""Scheduled reports: per tenant, weekly or monthly, for some or all sites, e-mailed to a list
of recipients with the PDF and CSV attached (through the mail outbox).

A schedule's ``next_run_at`` is the end of its current period plus ``DELAY`` (so the hourly
rollup has settled). The worker's tick requests the period that just ended and moves
``next_run_at`` on, in one transaction, under a row lock: two workers never request it twice,
and a worker that was down for a week requests each missed period once, then catches up.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from central import audit
from central.mail.outbox import MAX_RECIPIENTS, MailError, normalize_address
from central.reports import scope, service
from central.reports.period import Period, zone
from central.reports.request import ReportSpec, RequestError, parse

logger = logging.getLogger(__name__)

CADENCES = {"weekly": "week", "monthly": "month"}
DELAY = timedelta(hours=1)
MAX_SCHEDULES = 50  # per tenant
MAX_PER_TICK = 100  # the rest wait for the next tick


def _period_after(cadence: str, day: date, time_zone: str) -> Period:
    """The cadence's period following the one containing ``day``."""
    current = Period.of(CADENCES[cadence], day, time_zone)
    return Period.of(CADENCES[cadence], current.last_day + timedelta(days=1), time_zone)


def first_run(cadence: str, time_zone: str, now: datetime) -> datetime:
    """When the period running at ``now`` will have ended (and settled)."""
    today = now.astimezone(zone(time_zone)).date()
    return _period_after(cadence, today, time_zone).start + DELAY


def parse_recipients(raw: Any) -> list[str]:
    if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_RECIPIENTS:
        raise RequestError([("recipients", f"expected 1 to {MAX_RECIPIENTS} e-mail addresses")])
    try:
        return list(dict.fromkeys(normalize_address(r) for r in raw if isinstance(r, str)))
    except MailError as err:
        raise RequestError([("recipients", str(err))]) from None


def create(
    conn: psycopg.Connection[Any],
    tenant_id: int,
    body: dict[str, Any],
    actor: str,
    now: datetime,
) -> int:
    """A schedule from ``body`` {cadence, scope, time_zone, demand_minutes, recipients}."""
    problems: list[tuple[str, str]] = []
    cadence = body.get("cadence")
    if cadence not in CADENCES:
        problems.append(("cadence", "expected weekly or monthly"))
    try:
        recipients = parse_recipients(body.get("recipients"))
    except RequestError as err:
        problems += err.problems
    try:
        # checked as the first report it will request
        spec = parse(
            body.get("scope"),
            {"kind": CADENCES.get(str(cadence), "month"), "day": now.date().isoformat()},
            body.get("time_zone"),
            body.get("demand_minutes", 15),
        )
    except RequestError as err:
        problems += err.problems
    if problems:
        raise RequestError(problems)
    count = conn.execute(
        "SELECT count(*) FROM report_schedules WHERE tenant_id = %s", (tenant_id,)
    ).fetchone()
    if count and count[0] >= MAX_SCHEDULES:
        raise RequestError([("schedule", f"a tenant has at most {MAX_SCHEDULES} schedules")])
    scope.resolve(conn, tenant_id, spec.site_ids)
    row = conn.execute(
        """INSERT INTO report_schedules (tenant_id, cadence, scope, time_zone, demand_minutes,
               recipients, next_run_at, created_by)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING id""",
        (
            tenant_id,
            cadence,
            Jsonb({"site_ids": spec.site_ids}),
            spec.period.time_zone,
            spec.demand_minutes,
            recipients,
            first_run(str(cadence), spec.period.time_zone, now),
            actor,
        ),
    ).fetchone()
    assert row is not None
    schedule_id = int(row[0])
    audit.record(
        conn,
        tenant_id,
        actor,
        "report_schedule.create",
        ("report_schedule", schedule_id),
        details={"cadence": cadence, "recipients": recipients},
    )
    return schedule_id


def list_schedules(conn: psycopg.Connection[Any], tenant_id: int) -> list[dict[str, Any]]:
    rows = conn.execute(
        """SELECT id, cadence, scope, time_zone, demand_minutes, recipients, enabled,
                  next_run_at, created_by, created_at
           FROM report_schedules WHERE tenant_id = %s ORDER BY id""",
        (tenant_id,),
    ).fetchall()
    return [
        {
            "id": r[0],
            "cadence": r[1],
            "scope": r[2],
            "time_zone": r[3],
            "demand_minutes": r[4],
            "recipients": r[5],
            "enabled": r[6],
            "next_run_at": r[7].isoformat(),
            "created_by": r[8],
            "created_at": r[9].isoformat(),
        }
        for r in rows
    ]


def delete(conn: psycopg.Connection[Any], tenant_id: int, schedule_id: int, actor: str) -> bool:
    row = conn.execute(
        "DELETE FROM report_schedules WHERE id = %s AND tenant_id = %s RETURNING id",
        (schedule_id, tenant_id),
    ).fetchone()
    if row is not None:
        audit.record(
            conn, tenant_id, actor, "report_schedule.delete", ("report_schedule", schedule_id)
        )
    return row is not None


def request_due(conn: psycopg.Connection[Any], now: datetime) -> list[int]:
    """Request the report of every schedule whose period has ended; returns the report ids."""
    requested: list[int] = []
    for _ in range(MAX_PER_TICK):
        with conn.transaction():
            row = conn.execute(
                """SELECT id, tenant_id, cadence, scope, time_zone, demand_minutes, next_run_at
                   FROM report_schedules WHERE enabled AND next_run_at <= %s
                   ORDER BY next_run_at LIMIT 1 FOR UPDATE SKIP LOCKED""",
                (now,),
            ).fetchone()
            if row is None:
                return requested
            sid, tenant_id, cadence, covers, tz, demand, due = row
            # the period that ended at (due - DELAY): its last day is the day before
            last_day = (due - DELAY).astimezone(zone(tz)).date() - timedelta(days=1)
            period = Period.of(CADENCES[cadence], last_day, tz)
            spec = ReportSpec(covers.get("site_ids"), period, demand)
            try:
                requested.append(service.submit(conn, tenant_id, spec, f"schedule:{sid}", sid))
            except scope.ScopeError as err:
                logger.warning(
                    "report schedule %s skips %s: %s; edit or delete the schedule",
                    sid,
                    period.label,
                    err,
                )
            conn.execute(
                "UPDATE report_schedules SET next_run_at = %s WHERE id = %s",
                (_period_after(cadence, period.first_day, tz).end + DELAY, sid),
            )
    return requested
