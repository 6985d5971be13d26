"""The central worker keeps the hourly rollup current from what ingest wrote."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import psycopg
import requests

from common import wire
from tests.central_fixtures import CentralServer


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
    worker = subprocess.Popen(
        [sys.executable, "-m", "central", "worker"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            with psycopg.connect(central_server.db_url) as conn:
                row = conn.execute(
                    "SELECT n, min, max, first_value, last_value FROM readings_hourly "
                    "WHERE hour = %s",
                    (hour,),
                ).fetchone()
            if row is not None:
                break
            assert worker.poll() is None, worker.stdout.read().decode() if worker.stdout else ""
            assert time.monotonic() < deadline, "no rollup within 30 s"
            time.sleep(0.5)
    finally:
        worker.terminate()
        output = worker.communicate(timeout=30)[0].decode()
    assert row == (6, 100.0, 150.0, 100.0, 150.0)
    assert worker.returncode == 0, output
    assert "worker started: rollup every 60 s, prune every 86400 s" in output
