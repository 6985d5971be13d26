"""Reports end to end: requested over the operator API and in the operator UI (a real gunicorn),
made by the real central worker process, downloaded as PDF and CSV, and a scheduled report
e-mailed with both attached through the outbox to a real SMTP server (aiosmtpd)."""

from __future__ import annotations

import csv
import io
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest
import requests
from playwright.sync_api import Browser

from tests import report_data
from tests.central_fixtures import CentralServer, central_env
from tests.smtp_capture import SmtpServer
from tests.ui_browser import PASSWORD, browser, open_ui  # noqa: F401  (fixture)

OCTOBER = {"kind": "month", "day": "2026-10-01"}


def _load(server: CentralServer) -> dict[str, int]:
    tenant_id = server.create_tenant("test-tenant")
    with psycopg.connect(server.db_url) as conn:
        return report_data.load(conn, tenant_id)


@contextmanager
def central_worker(
    server: CentralServer, tmp_path: Path, extra: dict[str, str]
) -> Iterator[subprocess.Popen[bytes]]:
    env = central_env(server.db_url, server.redis_url, tmp_path, **extra)
    log = (tmp_path / "worker.log").open("wb")
    worker = subprocess.Popen(
        [sys.executable, "-m", "central", "worker"], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        yield worker
    finally:
        worker.terminate()
        worker.wait(timeout=60)
        log.close()


def _wait(
    what: str, check: Any, worker: subprocess.Popen[bytes], log: Path, timeout: float = 240
) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert worker.poll() is None, log.read_text()
        assert time.monotonic() < deadline, (
            f"{what} not within {timeout} s:\n{log.read_text()[-3000:]}"
        )
        time.sleep(0.5)


def test_the_worker_makes_a_requested_report_and_e_mails_a_scheduled_one(
    central_server: CentralServer, smtp_server: SmtpServer, tmp_path: Path
) -> None:
    _load(central_server)
    central_server.create_user("ops@example.com", PASSWORD, "operator")
    central_server.create_user("other@example.com", PASSWORD, "admin", tenant="other-tenant")
    api = requests.Session()
    api.auth = ("ops@example.com", PASSWORD)
    token = api.post(central_server.url("/api/v1/auth/token"), timeout=10).json()["token"]
    api.auth = None
    api.headers["Authorization"] = f"Bearer {token}"

    bad = api.post(
        central_server.url("/api/v1/reports"),
        json={"period": {"kind": "fortnight", "day": "2026-13-01"}, "time_zone": "Mars/Olympus"},
        timeout=10,
    )
    assert bad.status_code == 422, bad.text
    fields = {d["field"] for d in bad.json()["details"]}
    assert {"period.kind", "period.day"} <= fields
    past_bigint = api.get(
        central_server.url("/api/v1/reports"), params={"before": str(2**63)}, timeout=10
    )
    assert past_bigint.status_code == 400, past_bigint.text
    assert past_bigint.json()["error"].startswith("before: expected a whole number from 1"), (
        past_bigint.text
    )

    asked = api.post(
        central_server.url("/api/v1/reports"),
        json={"period": OCTOBER, "time_zone": "Europe/Paris"},
        timeout=10,
    )
    assert asked.status_code == 202, asked.text
    report_id = asked.json()["id"]
    assert asked.json()["status"] == "queued"
    assert asked.headers["Location"] == f"/api/v1/reports/{report_id}"

    schedule = api.post(
        central_server.url("/api/v1/report-schedules"),
        json={
            "cadence": "monthly",
            "time_zone": "Europe/Paris",
            "recipients": ["energy@example.com"],
        },
        timeout=10,
    )
    assert schedule.status_code == 201, schedule.text
    # The schedule's clock: its first run is after this month ends. Moving next_run_at to the
    # end of October stands in for waiting weeks (the period it requests follows from it).
    with psycopg.connect(central_server.db_url) as conn:
        conn.execute(
            "UPDATE report_schedules SET next_run_at = '2026-11-01 01:00+01' WHERE id = %s",
            (schedule.json()["id"],),
        )

    log = tmp_path / "worker.log"
    seen_progress: set[int] = set()
    with central_worker(central_server, tmp_path, smtp_server.env()) as worker:

        def done() -> dict[str, Any] | None:
            status = api.get(central_server.url(f"/api/v1/reports/{report_id}"), timeout=10).json()
            assert status["status"] != "failed", status
            if status["status"] == "running":
                seen_progress.add(status["progress"])
            return status if status["status"] == "done" else None

        status = _wait("the report", done, worker, log)
        # (later months follow when the clock is past them: each ended month is sent once)
        message = _wait(
            "the scheduled e-mail",
            lambda: next((m for m in smtp_server.messages if "October" in m.subject), None),
            worker,
            log,
        )

    assert "reports every 10 s" in log.read_text()
    summary = status["summary"]
    assert summary["energy_kwh"] == 22372.0 + 5587.375
    assert summary["peak_kw"] == 127.5
    assert summary["peak_start"] == "2026-10-25T02:30:00+01:00"
    assert status["files"] == ["pdf", "csv"]

    pdf = api.get(central_server.url(f"/api/v1/reports/{report_id}/pdf"), timeout=30)
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF-")
    assert pdf.headers["Content-Type"] == "application/pdf"
    assert "attachment;" in pdf.headers["Content-Disposition"]
    table = api.get(central_server.url(f"/api/v1/reports/{report_id}/csv"), timeout=30)
    rows = list(csv.DictReader(io.StringIO(table.content.decode("utf-8-sig"))))
    assert float(rows[0]["energy_kwh"]) == 22372.0 + 5587.375

    # another tenant sees none of it
    other = requests.get(
        central_server.url(f"/api/v1/reports/{report_id}/pdf"),
        auth=("other@example.com", PASSWORD),
        timeout=10,
    )
    assert other.status_code == 404

    assert message.rcpt_tos == ["energy@example.com"]
    assert message.subject == "MeterIT energy report: October 2026"
    assert "27,959.4 kWh" in message.text()
    files = {
        part.get_filename(): part.get_content_type() for part in message.message.iter_attachments()
    }
    assert sorted(files.values()) == ["application/pdf", "text/csv"]
    reports = api.get(central_server.url("/api/v1/reports"), timeout=10).json()["reports"]
    scheduled = min((r for r in reports if r["schedule_id"] is not None), key=lambda r: r["id"])
    assert scheduled["period"]["label"] == "October 2026"
    assert scheduled["requested_by"] == f"schedule:{schedule.json()['id']}"


@pytest.mark.browser
def test_the_reports_page_works_on_a_phone(
    browser: Browser,  # noqa: F811
    central_server: CentralServer,
    tmp_path: Path,
) -> None:
    _load(central_server)
    central_server.create_user("viewer@example.com", PASSWORD, "viewer")
    context = browser.new_context(
        viewport={"width": 390, "height": 844}, timezone_id="Europe/Paris"
    )
    page = context.new_page()
    page.set_default_timeout(20000)
    try:
        page.goto(central_server.url("/login"))
        page.fill("#email", "viewer@example.com")
        page.fill("#password", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_selector("header.topbar")
        page.click("nav >> text=Reports")
        # the browser's zone is offered instead of UTC
        assert page.input_value("#time_zone") == "Europe/Paris"
        page.select_option("#kind", "month")
        page.fill("#day", "2026-10-15")
        page.click("#report-form button[type=submit]")
        page.wait_for_selector("#report-history tr[data-status]")
        assert page.locator("#schedule-form").count() == 0  # a viewer cannot schedule
        log = tmp_path / "worker.log"

        def made() -> int:
            page.reload()
            return page.locator("tr[data-status=done]").count()

        with central_worker(central_server, tmp_path, {}) as worker:
            _wait("the report in the page", made, worker, log)
        page.click("#report-history tr[data-status=done] td a")
        page.wait_for_selector("[data-testid=report]")
        assert page.locator("svg.chart").count() == 3
        assert page.locator("circle.peak").count() == 1
        assert "127.5" in page.inner_text("#fleet-table")
        # nothing wider than the phone: wide tables scroll inside their box
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        wide = page.evaluate(
            """[...document.querySelectorAll('body *')]
                 .filter(e => e.getBoundingClientRect().right > window.innerWidth + 1)
                 .slice(0, 8).map(e => e.tagName + '.' + e.className + '#' + e.id)"""
        )
        assert overflow <= 1, f"the page is {overflow} px wider than the phone: {wide}"
        Path("artifacts/screenshots").mkdir(parents=True, exist_ok=True)
        page.screenshot(path="artifacts/screenshots/report-phone.png", full_page=False)
        with page.expect_download() as download:
            page.click("text=Download PDF")
        assert download.value.suggested_filename.endswith(".pdf")
    finally:
        context.close()
