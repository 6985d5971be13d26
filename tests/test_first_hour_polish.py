"""What a newcomer tripped over in the first hour (issue #22): a deprecation warning on every
install, a warning in central's log on every operator sign-in, explorer rows that looked like
duplicates, and the appliance not knowing its site's name."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import requests

from central.ui.explorer import _table
from common import wire
from tests.central_fixtures import CentralServer
from tests.sync_helpers import ROOT
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
