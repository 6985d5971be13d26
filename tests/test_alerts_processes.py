"""Alerting through real central processes: heartbeats and readings over HTTP into gunicorn,
each evaluation a separate ``meterit-central alerts evaluate --at`` process (a restart between
any two), e-mail sent by ``meterit-central mail send`` to a real SMTP server (aiosmtpd)."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import requests

from central import locks
from common import wire
from common.timestamps import format_ts
from tests.alert_helpers import Fleet, post_readings, power_reading
from tests.central_fixtures import CentralServer, central_env, run_central_worker
from tests.smtp_capture import SmtpServer


def central(
    command: list[str], server: CentralServer, tmp_path: Path, smtp: SmtpServer | None = None
) -> subprocess.CompletedProcess[str]:
    env = central_env(
        server.db_url,
        server.redis_url,
        tmp_path,
        METERIT_PUBLIC_URL="https://central.example",
        **(smtp.env() if smtp else {}),
    )
    return subprocess.run(
        [sys.executable, "-m", "central", *command],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def evaluate(server: CentralServer, tmp_path: Path, at: datetime) -> dict[str, Any]:
    done = central(["alerts", "evaluate", "--at", at.isoformat()], server, tmp_path)
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])  # after the log lines
    return result


def test_500_meters_of_one_site_going_down_make_one_email(
    central_server: CentralServer, smtp_server: SmtpServer, tmp_path: Path
) -> None:
    fleet = Fleet(central_server.db_url).setup()
    fleet.site("Plant 1", meter_count=500)
    now = datetime.now(UTC).replace(microsecond=0)
    down = now - timedelta(minutes=10)
    body = {
        "sent_at": format_ts(now),
        "backlog": 0,
        "dropped_readings": 0,
        "oldest_unsynced_age_s": None,
        "versions": {"meterit": "test"},
        "collection_paused": False,
        "upload_paused": False,
        "meters": [
            {"external_id": f"m{n}", "state": "unreachable", "since": format_ts(down),
             "last_error": "timeout"}
            for n in range(500)
        ],
    }  # fmt: skip
    answer = requests.post(
        central_server.url(wire.SYNC_HEARTBEAT),
        json=body,
        headers={wire.HEADER_API_KEY: fleet.api_keys["Plant 1"]},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text

    first = evaluate(central_server, tmp_path, now + timedelta(seconds=5))
    assert (first["firing"], first["emails"]) == (500, 0), "group_wait holds the first e-mail"
    second = evaluate(central_server, tmp_path, now + timedelta(seconds=40))
    assert (second["firing"], second["emails"]) == (0, 1)
    sent = central(
        ["mail", "send", "--at", (now + timedelta(seconds=41)).isoformat()],
        central_server,
        tmp_path,
        smtp_server,
    )
    assert sent.returncode == 0, sent.stderr
    assert json.loads(sent.stdout.splitlines()[-1])["sent"] == 1

    (mail,) = smtp_server.messages
    assert mail.subject == "[MeterIT] ACME / Plant 1: 500 firing"
    text = mail.text()
    assert text.count("- [warning] Meter unreachable: meter m") == 500
    assert "meter m499 of site Plant 1 unreachable since" in text
    assert "https://central.example/ui/alerts/" in text


def test_worker_restart_at_minute_7_of_a_10_minute_for_still_fires_at_minute_10(
    central_server: CentralServer, tmp_path: Path
) -> None:
    fleet = Fleet(central_server.db_url).setup()
    fleet.site("Plant 1", meter_count=1)
    fleet.only_rules()
    rule = fleet.rule(
        name="Power high",
        kind="value_threshold",
        for_s=600,
        params={"point": "power_kw", "set": 500},
    )
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    item = power_reading(start, 750.0)
    post_readings(central_server.base_url, fleet.api_keys["Plant 1"], [item], "b1")

    assert evaluate(central_server, tmp_path, start)["pending"] == 1
    for minute in range(1, 8):  # the first worker evaluates until minute 7, then it is gone
        assert evaluate(central_server, tmp_path, start + timedelta(minutes=minute))["firing"] == 0
    # a new process takes over; the clock of `for` is in the database, not in the process
    assert (
        evaluate(central_server, tmp_path, start + timedelta(minutes=9, seconds=59))["firing"] == 0
    )
    assert evaluate(central_server, tmp_path, start + timedelta(minutes=10))["firing"] == 1
    assert evaluate(central_server, tmp_path, start + timedelta(minutes=11))["firing"] == 0
    (instance,) = fleet.instances()
    assert (instance["pending_since"], instance["firing_since"]) == (
        start,
        start + timedelta(minutes=10),
    )
    with psycopg.connect(central_server.db_url) as conn:
        assert conn.execute(
            "SELECT count(*) FROM alert_instances WHERE rule_id = %s", (rule,)
        ).fetchone() == (1,)


def test_a_second_evaluator_skips_while_one_runs(
    central_server: CentralServer, tmp_path: Path
) -> None:
    with (
        psycopg.connect(central_server.db_url) as conn,
        locks.held(conn, locks.ALERT_EVALUATION) as got,
    ):
        assert got
        busy = central(["alerts", "evaluate"], central_server, tmp_path)
    assert busy.returncode == 75, busy.stderr
    assert json.loads(busy.stdout.splitlines()[-1])["ran"] is False
    assert central(["alerts", "evaluate"], central_server, tmp_path).returncode == 0


def test_the_central_worker_evaluates_and_emails_by_itself(
    central_server: CentralServer, smtp_server: SmtpServer, tmp_path: Path
) -> None:
    fleet = Fleet(central_server.db_url).setup()
    fleet.site("Plant 1")
    fleet.only_rules()
    fleet.rule(name="Quiet", kind="heartbeat_missing", params={"minutes": 1})
    fleet.heartbeat("Plant 1", datetime.now(UTC) - timedelta(minutes=5))
    env = central_env(
        central_server.db_url,
        central_server.redis_url,
        tmp_path,
        METERIT_ALERT_GROUP_WAIT_S="0",
        **smtp_server.env(),
    )
    with run_central_worker(env) as worker:
        worker.wait_for(
            lambda: bool(smtp_server.messages),
            90,
            "no alert e-mail from the worker within 90 s",
            poll_s=0.5,
        )
    (mail,) = smtp_server.messages
    assert mail.subject == "[MeterIT] ACME / Plant 1: 1 firing"
    assert "alerts every 30 s" in worker.output
    assert [i["state"] for i in fleet.instances()] == ["firing"]
