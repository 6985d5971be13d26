"""What a newcomer tripped over in the first hour (issue #22): a deprecation warning on every
install, a warning in central's log on every operator sign-in, explorer rows that looked like
duplicates, the appliance not knowing its site's name, an empty fleet power chart beside
"Power now", and no way to point the CLI at the demo's appliance."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
import requests

from central import fleet
from central.ui.explorer import _table
from common import env_file, wire
from common.config import ConfigError
from tests.central_fixtures import CentralServer
from tests.cli_run import run_cli
from tests.sync_helpers import ROOT
from tests.ui_browser import POINTS, meter_readings, run_rollup, send_readings
from tests.ui_session import signed_in


def test_building_the_package_warns_of_nothing_and_names_the_license(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(tmp_path), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    assert "deprecated" not in done.stdout + done.stderr
    (wheel,) = tmp_path.glob("meterit-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        metadata = zf.read(next(n for n in zf.namelist() if n.endswith("METADATA"))).decode()
    assert "License-Expression: Apache-2.0" in metadata


def test_an_operator_sign_in_logs_no_refused_sync_call(central_server: CentralServer) -> None:
    central_server.create_user("op@example.com", "a-long-operator-password", "operator")
    session = signed_in(central_server, "op@example.com", "a-long-operator-password")
    assert session.get(central_server.url("/"), timeout=30).status_code == 200
    assert "sync API refused" not in central_server.log()
    # a sync call without a key is still refused, limited per address and logged once
    answer = requests.post(central_server.url(wire.SYNC_AUTH), timeout=30)
    assert answer.status_code == 401
    assert "X-RateLimit-Limit" in answer.headers
    assert central_server.log().count("sync API refused /api/v1/sync/auth") == 1


def test_explorer_rows_of_meters_read_in_the_same_second_are_one_row() -> None:
    second = datetime(2026, 12, 1, 10, 0, 0, tzinfo=UTC)
    data = {
        1: [(second.replace(microsecond=120_000), 5.0, 5.0, 5.0)],
        2: [(second.replace(microsecond=870_000), 7.0, 7.0, 7.0)],
    }
    chosen = [
        (1, "meter-a", "", "power_kw", "kW", True),
        (2, "meter-b", "", "power_kw", "kW", True),
    ]
    assert _table(data, chosen) == [(second, [5.0, 7.0])]


def test_the_config_answer_names_the_site_and_bad_names_are_ignored() -> None:
    body = wire.config_answer(3, "Plant 1", [])
    assert wire.config_site(body) == wire.ConfigSite(3, "Plant 1")
    assert wire.config_site({"site_id": True, "site_name": 7}) == wire.ConfigSite(None, None)
    assert wire.config_site({"site_id": 1, "site_name": "x" * 500}).site_name == "x" * 200
    assert wire.config_site(["not", "a", "dict"]) == wire.ConfigSite(None, None)


def test_fleet_power_chart_has_the_hour_the_rollup_has_not_settled(
    central_server: CentralServer,
) -> None:
    central = central_server
    site = central.create_site("First Hour Works")
    for meter in ("main-incomer", "chiller-1"):
        central.add_meter(site.site_id, meter, POINTS, address="10.0.0.5:47808")
    central.create_user("viewer@example.com", "a-long-viewer-password", "viewer")
    now = datetime.now(UTC)
    hour = now.replace(minute=0, second=0, microsecond=0)
    step = max((now - hour) / 4, timedelta(milliseconds=1))  # three readings, all this hour
    items = meter_readings("main-incomer", now, 3, step) + meter_readings("chiller-1", now, 3, step)
    assert send_readings(central, site.api_key, items)["accepted"] == len(items)

    session = signed_in(central, "viewer@example.com", "a-long-viewer-password")
    page = session.get(central.url("/"), timeout=30).text
    found = re.search(r'<script type="application/json" id="chart-data">(.*?)</script>', page)
    assert found, page[:500]
    power = json.loads(found.group(1))["power"]
    # before this fix: x == [] ("No power readings in the last 24 h") beside "Power now 240 kW"
    assert power["x"] == [int(hour.timestamp() * 1000)] and power["y"] == [240.0]

    # once the rollup has the hour, the raw tail stops at it: the hour is counted once
    run_rollup(central)
    fleet._power_cache.clear()
    with psycopg.connect(central.db_url) as conn:
        series = fleet.power_series(
            conn, site.tenant_id, [site.site_id], now - timedelta(hours=24), now
        )
    assert series == [(hour, 240.0)]


def test_the_cli_takes_its_settings_from_an_env_file(tmp_path: Path) -> None:
    settings = tmp_path / "appliance.env"
    settings.write_text(
        "# as make demo writes it\n"
        "METERIT_DATABASE_URL=postgresql://demo@/meterit_demo_edge?host=/tmp/demo\n"
        "METERIT_CENTRAL_URL='http://127.0.0.1:8000'\n"
        'export METERIT_POLL_INTERVAL_S="7"\n'
        "\n"
        "METERIT_LOG_LEVEL = debug\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("METERIT_")}
    env["METERIT_POLL_INTERVAL_S"] = "60"  # the file named on the command line wins
    env["METERIT_CONFIG"] = str(tmp_path / "none.toml")
    (tmp_path / "none.toml").touch()
    done = run_cli("appliance", env, "--env-file", str(settings), "config")
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    assert shown["database_url"] == "postgresql://demo@/meterit_demo_edge?host=/tmp/demo"
    assert shown["central_url"] == "http://127.0.0.1:8000"
    assert shown["poll_interval_s"] == 7 and shown["log_level"] == "debug"

    settings.write_text("METERIT_DATABASE_URL=x\nthis is not a setting\n")
    done = run_cli("appliance", env, f"--env-file={settings}", "config")
    assert done.returncode == 78
    assert "line 2: expected NAME=value" in done.stderr
    with pytest.raises(ConfigError, match="cannot read"):
        env_file.read(tmp_path / "missing.env")
