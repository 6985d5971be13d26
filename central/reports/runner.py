"""The central worker's side of reports: claim a requested report, compute it, store the result
and its files, and e-mail scheduled ones through the outbox.

The ``reports`` table is the queue. The worker's ``reports`` tick (every few seconds) requests
what schedules have due, then claims waiting reports one by one with compare-and-set, so any
number of workers share them and Redis holds nothing that matters. A report whose worker died
(no heartbeat for ``STALE``) is claimed again, at most ``MAX_ATTEMPTS`` times in all.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from central.mail import outbox
from central.reports import build, csv_export, documents, schedules, service, source
from central.reports.period import Period

logger = logging.getLogger(__name__)

STALE = timedelta(minutes=10)
MAX_ATTEMPTS = 3
ERROR_CHARS = 500

CLAIM_SQL = """
UPDATE reports SET status = 'running', started_at = now(), heartbeat_at = now(),
    attempts = attempts + 1, progress = 0, stage = 'starting', error = NULL
WHERE id = (
    SELECT id FROM reports
    WHERE status = 'queued' OR (status = 'running' AND heartbeat_at < now() - %(stale)s)
    ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED
)
RETURNING id, tenant_id, scope, period_kind, first_day, last_day, time_zone, demand_minutes,
    schedule_id, attempts
"""


def claim(conn: psycopg.Connection[Any]) -> tuple[Any, ...] | None:
    with conn.transaction():
        row = conn.execute(CLAIM_SQL, {"stale": STALE}).fetchone()
        if row is not None and row[9] > MAX_ATTEMPTS:
            conn.execute(
                """UPDATE reports SET status = 'failed', finished_at = now(),
                       error = 'the worker stopped while making it, ' || %s || ' times'
                   WHERE id = %s""",
                (MAX_ATTEMPTS, row[0]),
            )
            logger.error("report %s given up after %d attempts", row[0], MAX_ATTEMPTS)
            return claim(conn)
    return tuple(row) if row is not None else None


class ProgressWriter:
    """Writes a report's progress through its own autocommit connection: it must show while the
    report's own transaction is open, and it is the heartbeat that tells a live run from a dead
    one."""

    def __init__(self, url: str, report_id: int) -> None:
        self.conn = psycopg.connect(url, autocommit=True)
        self.report_id = report_id

    def __call__(self, pct: int, stage: str) -> None:
        self.conn.execute(
            """UPDATE reports SET progress = %s, stage = %s, heartbeat_at = now()
               WHERE id = %s AND status = 'running'""",
            (pct, stage, self.report_id),
        )
        logger.info("report %s: %d %% %s", self.report_id, pct, stage)

    def close(self) -> None:
        self.conn.close()


def _mail(
    conn: psycopg.Connection[Any],
    report_id: int,
    schedule_id: int,
    result: dict[str, Any],
    files: dict[str, bytes],
) -> None:
    row = conn.execute(
        "SELECT recipients, tenant_id FROM report_schedules WHERE id = %s", (schedule_id,)
    ).fetchone()
    if row is None:  # deleted while the report ran: nobody to send it to
        return
    status = service.get_report(conn, row[1], report_id)
    assert status is not None
    s = build.summary(result)
    text = (
        f"The energy report for {s['period']} ({s['time_zone']}) is attached as PDF and CSV.\n\n"
        f"Energy: {s['energy_kwh']:,.1f} kWh (previous period {s['previous_energy_kwh']:,.1f} kWh)\n"
        f"Peak demand: {s['peak_kw'] or 0:,.1f} kW at {s['peak_start'] or '-'}\n"
        f"Data completeness: {s['completeness_pct']:.1f} %\n"
        f"Sites: {s['sites']}, meters: {s['meters']}, counter resets: {s['resets']}\n"
    )
    outbox.enqueue(
        conn,
        list(row[0]),
        f"MeterIT energy report: {s['period']}",
        text,
        attachments=[
            (service.file_name(status, kind), mime.split(";")[0], files[kind])
            for kind, mime in service.FILE_TYPES.items()
        ],
        tenant_id=row[1],
        capped=False,  # the recipients asked for it
    )


def run_one(
    conn: psycopg.Connection[Any],
    url: str,
    read_url: str | None = None,
    replay_wait: timedelta = source.REPLAY_WAIT,
) -> int | None:
    """Claim and make one report; returns its id, or None when none waits. Its figures are
    read from ``read_url`` (a replica) when it has caught up (``central.reports.source``),
    else from the primary ``url``; everything it writes goes to the primary (``conn``)."""
    row = claim(conn)
    if row is None:
        return None
    report_id, tenant_id, covers, kind, first, last, tz, demand, schedule_id, _ = row
    progress = ProgressWriter(url, report_id)
    started = time.monotonic()
    try:
        period = Period.of(kind, first, tz, last)
        result, figures_url = source.read_figures(
            lambda figures_from: build.build(
                conn,
                tenant_id,
                covers.get("site_ids"),
                period=period,
                demand=timedelta(minutes=demand),
                progress=progress,
                connect=lambda: psycopg.connect(figures_from),
            ),
            url,
            source.url_to_read(conn, url, read_url, replay_wait),
        )
        progress(75, "rendering the PDF")
        files = {"pdf": documents.pdf(result)}
        progress(95, "writing the CSV")
        files["csv"] = csv_export.render(result)
        with conn.transaction():
            for file_kind, content in files.items():
                conn.execute(
                    """INSERT INTO report_files (report_id, kind, content) VALUES (%s, %s, %s)
                       ON CONFLICT (report_id, kind) DO UPDATE SET content = EXCLUDED.content""",
                    (report_id, file_kind, content),
                )
            done = conn.execute(
                """UPDATE reports SET status = 'done', progress = 100, stage = 'done',
                       finished_at = now(), result = %s, summary = %s
                   WHERE id = %s AND status = 'running' RETURNING id""",
                (Jsonb(result), Jsonb(build.summary(result)), report_id),
            ).fetchone()
            if done is not None and schedule_id is not None:
                _mail(conn, report_id, schedule_id, result, files)
        logger.info(
            "report %s done in %.1f s: %s, %d site(s), read from the %s",
            report_id,
            time.monotonic() - started,
            period.label,
            len(result["sites"]),
            "primary" if figures_url == url else "replica",
        )
    except Exception as err:
        conn.rollback()
        logger.exception("report %s failed: %s", report_id, err)
        with conn.transaction():
            conn.execute(
                """UPDATE reports SET status = 'failed', finished_at = now(), error = %s
                   WHERE id = %s""",
                (f"{type(err).__name__}: {err}"[:ERROR_CHARS], report_id),
            )
    finally:
        progress.close()
    return int(report_id)


def tick(
    conn: psycopg.Connection[Any],
    url: str,
    now: datetime,
    max_reports: int,
    read_url: str | None = None,
) -> dict[str, int]:
    """Request due scheduled reports, then make up to ``max_reports`` waiting ones (the rest
    wait for the next run), reading their figures from ``read_url`` when it is set."""
    requested = schedules.request_due(conn, now)
    made = 0
    while made < max_reports and run_one(conn, url, read_url) is not None:
        made += 1
    return {"scheduled": len(requested), "made": made}
