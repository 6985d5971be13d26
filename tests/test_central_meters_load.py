"""``meterit-central meters load``: the site's meter list from a meters file, idempotently
(Ansible reports "changed" from its counts), through the real CLI and database."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import psycopg

from tests.harness import scalar
from tests.test_central_operator import cli


def meter(external_id: str, instance: int, points: list[tuple[str, str]]) -> dict[str, Any]:
    return {
        "external_id": external_id,
        "name": external_id.title(),
        "address": "127.0.0.1:47901",
        "device_instance": instance,
        "points": [
            {"name": name, "object": obj, "property": "present-value", "unit": "kWh"}
            for name, obj in points
        ],
    }


def load(db_url: str, path: Path, meters: list[dict[str, Any]]) -> dict[str, int]:
    path.write_text(json.dumps(meters))
    done = cli(db_url, "meters", "load", "acme", "plant-1", str(path), "--json")
    assert done.returncode == 0, done.stderr
    counts: dict[str, int] = json.loads(done.stdout)
    return counts


def test_meters_load_creates_then_changes_only_what_differs(
    central_db_url: str, tmp_path: Path
) -> None:
    assert cli(central_db_url, "tenant", "create", "acme").returncode == 0
    assert cli(central_db_url, "site", "create", "acme", "plant-1").returncode == 0
    path = tmp_path / "meters.json"
    first = [
        meter("main", 1000, [("energy", "analog-input,1"), ("power", "analog-input,2")]),
        meter("pump", 1001, [("energy", "analog-input,1")]),
    ]
    assert load(central_db_url, path, first) == {
        "created": 2,
        "updated": 0,
        "deactivated": 0,
        "unchanged": 0,
    }
    with psycopg.connect(central_db_url) as conn:
        version = scalar(conn, "SELECT config_version FROM sites")
    assert load(central_db_url, path, first) == {
        "created": 0,
        "updated": 0,
        "deactivated": 0,
        "unchanged": 2,
    }
    with psycopg.connect(central_db_url) as conn:
        assert scalar(conn, "SELECT config_version FROM sites") == version

    second = [meter("main", 1000, [("energy", "analog-input,1")])]
    assert load(central_db_url, path, second) == {
        "created": 0,
        "updated": 1,
        "deactivated": 1,
        "unchanged": 0,
    }
    with psycopg.connect(central_db_url) as conn:
        active = conn.execute(
            "SELECT m.external_id, p.name FROM meters m JOIN meter_points p ON p.meter_id = m.id"
            " WHERE m.active AND p.active ORDER BY 1, 2"
        ).fetchall()
    assert active == [("main", "energy")]
    assert load(central_db_url, path, second)["unchanged"] == 1


def test_meters_load_refuses_a_bad_file_whole(central_db_url: str, tmp_path: Path) -> None:
    assert cli(central_db_url, "tenant", "create", "acme").returncode == 0
    assert cli(central_db_url, "site", "create", "acme", "plant-1").returncode == 0
    path = tmp_path / "meters.json"
    good = meter("main", 1000, [("energy", "analog-input,1")])
    bad = meter("pump", 1001, [("energy", "no-such-object,1")])
    path.write_text(json.dumps([good, bad, good]))
    done = cli(central_db_url, "meters", "load", "acme", "plant-1", str(path))
    assert done.returncode == 65
    assert "meter 2:" in done.stderr and "meter 3: external_id 'main' repeated" in done.stderr
    with psycopg.connect(central_db_url) as conn:
        assert scalar(conn, "SELECT count(*) FROM meters") == 0
    path.write_text(json.dumps([good]))
    missing = cli(central_db_url, "meters", "load", "acme", "plant-9", str(path))
    assert missing.returncode == 65 and "no site named 'plant-9'" in missing.stderr
