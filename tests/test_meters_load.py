"""`meterit-appliance meters load` fills the edge meter list from a file, all or nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg

from appliance.bacnet.simulator import SimMeterSpec, meters_document


def load(edge_db_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "METERIT_DATABASE_URL": edge_db_url}
    env.pop("METERIT_CENTRAL_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "appliance", "meters", "load", *args],
        env=env,
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )


def active_meters(url: str) -> dict[str, int]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT m.external_id, count(p.id) FROM meters m JOIN meter_points p "
            "ON p.meter_id = m.id AND p.active WHERE m.active AND m.source = 'file' "
            "GROUP BY m.external_id"
        ).fetchall()
    return dict(rows)


def test_load_inserts_then_replaces_the_meter_list(edge_db_url: str, tmp_path: Path) -> None:
    specs = [SimMeterSpec(device_instance=10 + i, port=48500 + i, points=4) for i in range(3)]
    path = tmp_path / "meters.json"
    path.write_text(json.dumps(meters_document(specs)))
    first = load(edge_db_url, str(path))
    assert first.returncode == 0, first.stderr
    assert "3 inserted, 0 updated, 0 deactivated" in first.stdout
    assert active_meters(edge_db_url) == {"sim-10": 4, "sim-11": 4, "sim-12": 4}

    path.write_text(json.dumps(meters_document(specs[:2])))
    second = load(edge_db_url, str(path))
    assert "0 inserted, 0 updated, 1 deactivated" in second.stdout
    assert set(active_meters(edge_db_url)) == {"sim-10", "sim-11"}


def test_bad_file_names_each_field_and_writes_nothing(edge_db_url: str, tmp_path: Path) -> None:
    document = meters_document([SimMeterSpec(device_instance=20, port=48510, points=2)])
    document[0]["points"][1]["object"] = "analog-inptu,2"
    document.append({"external_id": "no-address", "points": []})
    path = tmp_path / "meters.json"
    path.write_text(json.dumps(document))
    result = load(edge_db_url, str(path))
    assert result.returncode == 65
    assert "nothing loaded" in result.stderr
    assert "meters[0] (sim-20).points[1].object: 'analog-inptu,2'" in result.stderr
    assert "meters[1] (no-address)" in result.stderr
    assert active_meters(edge_db_url) == {}
    assert load(edge_db_url, "--check", str(path)).returncode == 65
