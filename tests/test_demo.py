"""`make demo` as a user runs it: the whole flow comes up on embedded servers and stops cleanly."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from common.embedded import reachable
from tests.cli_run import run_cli
from tests.harness import ROOT

DEMO_PORTS = (8000, 8080, 8765)


def central_readings(data: Path) -> int:
    url = f"postgresql://postgres@/meterit_demo_central?host={data / 'postgres'}"
    try:
        with psycopg.connect(url, connect_timeout=2) as conn:
            row = conn.execute("SELECT count(*) FROM readings").fetchone()
            return int(row[0]) if row else 0
    except psycopg.Error:
        return 0


def start_demo(data: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("METERIT_")}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "demo",
            "--dir",
            str(data),
            "--meters",
            "3",
            "--poll-interval",
            "5",
        ],
        cwd=ROOT,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )


def stop_demo(proc: subprocess.Popen[bytes]) -> int:
    proc.send_signal(signal.SIGINT)  # what Ctrl-C sends
    return proc.wait(90)


@pytest.mark.slow
def test_demo_brings_readings_to_central_and_resumes(tmp_path: Path) -> None:
    busy = [p for p in DEMO_PORTS if reachable("127.0.0.1", p)]
    if busy:
        pytest.skip(f"demo ports in use on this machine: {busy}")
    data, log = tmp_path / "demo", tmp_path / "demo.log"
    proc = start_demo(data, log)
    try:
        deadline = time.monotonic() + 120
        while central_readings(data) == 0:
            assert proc.poll() is None, f"demo exited early:\n{log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, (
                f"no readings at central:\n{log.read_text()[-3000:]}"
            )
            time.sleep(2)
        text = log.read_text()
        assert "MeterIT demo is running" in text
        assert "[collector]" in text and "[central]" in text and "[worker]" in text
        # issue #22: two meter syncs raced at every start; setuptools warned of the license
        assert "meter sync refused" not in text and "deprecated" not in text
        assert_cli_reaches_the_demo_appliance(data / "appliance.env")
    finally:
        assert stop_demo(proc) == 0, log.read_text()[-3000:]
    first = central_readings_after_restart(data, tmp_path / "again.log")
    assert first > 0


def assert_cli_reaches_the_demo_appliance(env_file: Path) -> None:
    """The file README names points the CLI (here: doctor) at the running demo's appliance."""
    assert env_file.stat().st_mode & 0o077 == 0  # it holds the site's key
    env = {k: v for k, v in os.environ.items() if not k.startswith("METERIT_")}
    done = run_cli("appliance", env, "--env-file", str(env_file), "doctor", "--json")
    checks = {c["name"]: c for c in json.loads(done.stdout)["checks"]}
    for name in ("database", "redis", "central", "api key", "bacnet port"):
        assert checks[name]["status"] == "ok", done.stdout


def central_readings_after_restart(data: Path, log: Path) -> int:
    """A second run finds the same site, key and readings, and keeps adding to them."""
    proc = start_demo(data, log)
    try:
        deadline = time.monotonic() + 60
        while True:
            before = central_readings(data)
            if before:
                break
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(1)
        while central_readings(data) <= before:
            assert proc.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline + 60, f"no new readings:\n{log.read_text()[-3000:]}"
            time.sleep(2)
        assert "Conflict" not in log.read_text()
        return central_readings(data)
    finally:
        assert stop_demo(proc) == 0, log.read_text()[-3000:]
