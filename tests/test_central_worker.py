"""The central worker keeps the hourly rollup current from what ingest wrote."""

from __future__ import annotations

import gzip
import json
import os
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import requests

from common import wire
from tests.central_fixtures import CentralServer, run_central_worker


def test_worker_rolls_up_ingested_hours(central_server: CentralServer) -> None:
    site = central_server.create_site("rollup-site")
    central_server.add_meter(site.site_id, "m1", [("energy_kwh", "analog-input,1", "kWh")])
    hour = (datetime.now(UTC) - timedelta(hours=3)).replace(minute=0, second=0, microsecond=0)
    items = [
        wire.reading_item("m1", "energy_kwh", hour + timedelta(minutes=m), 100.0 + m, "kWh")
        for m in range(0, 60, 10)
    ]
    answer = requests.post(
        central_server.url(wire.SYNC_READINGS),
        data=gzip.compress(json.dumps({"readings": items}).encode()),
        headers={
            wire.HEADER_API_KEY: site.api_key,
            wire.HEADER_IDEMPOTENCY_KEY: "rollup-1",
            "Content-Type": "application/json",
            "Content-Encoding": "gzip",
        },
        timeout=10,
    )
    assert answer.json()["accepted"] == 6, answer.text

    env = {
        **os.environ,
        "METERIT_DATABASE_URL": central_server.db_url,
        "METERIT_REDIS_URL": central_server.redis_url,
    }
    row: tuple[Any, ...] | None = None

    def rolled_up() -> bool:
        nonlocal row
        with psycopg.connect(central_server.db_url) as conn:
            row = conn.execute(
                "SELECT n, min, max, first_value, last_value FROM readings_hourly WHERE hour = %s",
                (hour,),
            ).fetchone()
        return row is not None

    with run_central_worker(env) as worker:
        worker.wait_for(rolled_up, 30, "no rollup within 30 s", poll_s=0.5)
    assert row == (6, 100.0, 150.0, 100.0, 150.0)
    assert worker.process.returncode == 0, worker.output
    assert "worker started: rollup every 60 s, prune every 86400 s" in worker.output
