"""The operator JSON API and the admin CLI, against a real server and database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg
import requests

from common.wire import SYNC_AUTH, SYNC_CONFIG
from tests.central_fixtures import CentralServer
from tests.harness import scalar
from tests.recent import iso
from tests.test_central_sync import T0, items, post_batch

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "correct horse battery"


def token(server: CentralServer, email: str) -> dict[str, str]:
    answer = requests.post(server.url("/api/v1/auth/token"), auth=(email, PASSWORD), timeout=10)
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['token']}"}


def test_operator_needs_valid_credentials(central_server: CentralServer) -> None:
    central_server.create_user("admin@example.com", PASSWORD, "admin")
    wrong = requests.post(
        central_server.url("/api/v1/auth/token"), auth=("admin@example.com", "nope"), timeout=10
    )
    assert wrong.status_code == 401 and "wrong e-mail or password" in wrong.json()["error"]
    anonymous = requests.get(central_server.url("/api/v1/sites"), timeout=10)
    assert anonymous.status_code == 401 and "Authorization" in anonymous.json()["error"]
    basic = requests.get(
        central_server.url("/api/v1/sites"), auth=("admin@example.com", PASSWORD), timeout=10
    )
    assert basic.status_code == 200


def test_admin_manages_sites_and_keys_through_the_api_with_audit(
    central_server: CentralServer,
) -> None:
    central_server.create_user("admin@example.com", PASSWORD, "admin")
    auth = token(central_server, "admin@example.com")
    created = requests.post(
        central_server.url("/api/v1/sites"), json={"name": "plant-9"}, headers=auth, timeout=10
    )
    assert created.status_code == 201
    site_id, key = created.json()["site_id"], created.json()["api_key"]
    assert (
        requests.post(central_server.url(SYNC_AUTH), headers={"X-API-Key": key}, timeout=10).json()[
            "site_id"
        ]
        == site_id
    )

    rotated = requests.post(
        central_server.url(f"/api/v1/sites/{site_id}/keys/rotate"),
        json={"overlap_hours": 0},
        headers=auth,
        timeout=10,
    )
    assert rotated.status_code == 201
    new_key = rotated.json()["api_key"]
    old = requests.post(central_server.url(SYNC_AUTH), headers={"X-API-Key": key}, timeout=10)
    assert old.status_code == 401 and "expired" in old.json()["error"]

    revoked = requests.post(
        central_server.url(f"/api/v1/sites/{site_id}/keys/revoke"), headers=auth, timeout=10
    )
    assert revoked.status_code == 200 and len(revoked.json()["revoked"]) == 1
    gone = requests.post(central_server.url(SYNC_AUTH), headers={"X-API-Key": new_key}, timeout=10)
    assert gone.status_code == 401 and "revoked" in gone.json()["error"]

    keys = requests.get(
        central_server.url(f"/api/v1/sites/{site_id}/keys"), headers=auth, timeout=10
    ).json()["keys"]
    assert [k["usable"] for k in keys] == [False, False]
    with psycopg.connect(central_server.db_url) as conn:
        audit = conn.execute(
            "SELECT actor, action FROM audit_log WHERE actor LIKE 'user:%' ORDER BY id"
        ).fetchall()
    assert [a for _, a in audit] == ["site.create", "key.create", "key.rotate", "key.revoke"]
    assert {actor for actor, _ in audit} == {"user:admin@example.com"}


def test_roles_and_tenants_limit_what_an_operator_can_do(central_server: CentralServer) -> None:
    mine = central_server.create_site("mine")
    other = central_server.create_site("theirs", tenant="other-tenant")
    central_server.create_user("viewer@example.com", PASSWORD, "viewer")
    auth = token(central_server, "viewer@example.com")
    listed = requests.get(central_server.url("/api/v1/sites"), headers=auth, timeout=10)
    assert [s["name"] for s in listed.json()["sites"]] == ["mine"]
    assert listed.json()["sites"][0]["status"] == "never"
    denied = requests.post(
        central_server.url("/api/v1/sites"), json={"name": "x"}, headers=auth, timeout=10
    )
    assert denied.status_code == 403 and "admin role" in denied.json()["error"]
    hidden = requests.get(
        central_server.url(f"/api/v1/sites/{other.site_id}/status"), headers=auth, timeout=10
    )
    assert hidden.status_code == 404
    status = requests.get(
        central_server.url(f"/api/v1/sites/{mine.site_id}/status"), headers=auth, timeout=10
    )
    assert status.status_code == 200 and status.json()["name"] == "mine"


def test_operator_defines_meters_and_the_appliance_config_follows(
    central_server: CentralServer,
) -> None:
    site = central_server.create_site("plant-1")
    central_server.create_user("op@example.com", PASSWORD, "operator")
    auth = token(central_server, "op@example.com")
    meter = {
        "site_id": site.site_id,
        "external_id": "main",
        "address": "10.0.0.5:47808",
        "device_instance": 1001,
        "points": [{"name": "energy_kwh", "object": "analog-input,1", "unit": "kWh"}],
    }
    created = requests.post(
        central_server.url("/api/v1/meters"), json=meter, headers=auth, timeout=10
    )
    assert created.status_code == 201, created.text
    meter_id = created.json()["id"]
    bad = requests.post(
        central_server.url("/api/v1/meters"),
        json={**meter, "external_id": "", "points": [{"name": "x", "object": "nope"}]},
        headers=auth,
        timeout=10,
    )
    assert bad.status_code == 422
    fields = {d["field"] for d in bad.json()["details"]}
    assert fields == {"external_id", "points[0].object"}

    sync = {"X-API-Key": site.api_key}
    first = requests.get(central_server.url(SYNC_CONFIG), headers=sync, timeout=10)
    assert [m["external_id"] for m in first.json()["meters"]] == ["main"]
    assert (
        requests.delete(
            central_server.url(f"/api/v1/meters/{meter_id}"), headers=auth, timeout=10
        ).json()["active"]
        is False
    )
    after = requests.get(
        central_server.url(SYNC_CONFIG),
        headers={**sync, "If-None-Match": first.headers["ETag"]},
        timeout=10,
    )
    assert after.status_code == 200 and after.json()["meters"] == []


def test_readings_are_listed_page_by_page(central_server: CentralServer) -> None:
    site = central_server.create_site("plant-1")
    central_server.add_meter(site.site_id, "main", [("energy_kwh", "analog-input,1", "kWh")])
    post_batch(central_server, site.api_key, "b1", items(n=25))
    central_server.create_user("viewer@example.com", PASSWORD, "viewer")
    auth = token(central_server, "viewer@example.com")
    seen: list[dict[str, Any]] = []
    params: dict[str, Any] = {"site_id": site.site_id, "meter": "main", "limit": 10}
    while True:
        page = requests.get(
            central_server.url("/api/v1/readings"), params=params, headers=auth, timeout=10
        ).json()
        seen += page["readings"]
        if page["next"] is None:
            break
        params["after"] = page["next"]
    assert len(seen) == 25
    assert seen[0] == {
        "ts": iso(T0),
        "meter": "main",
        "point": "energy_kwh",
        "value": 100.0,
        "unit": "kWh",
    }


def cli(db_url: str, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("METERIT_")}
    env["METERIT_DATABASE_URL"] = db_url
    return subprocess.run(
        [sys.executable, "-m", "central", *args],
        cwd=ROOT,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_cli_creates_sites_prints_the_key_once_and_rotates_and_revokes(
    central_db_url: str,
) -> None:
    assert cli(central_db_url, "tenant", "create", "acme").returncode == 0
    made = cli(central_db_url, "site", "create", "acme", "plant-1", "--json")
    assert made.returncode == 0, made.stderr
    site = json.loads(made.stdout)
    listed = cli(central_db_url, "site", "list")
    assert site["key_prefix"] in listed.stdout and site["api_key"] not in listed.stdout
    rotated = cli(central_db_url, "key", "rotate", str(site["site_id"]), "--overlap-hours", "2")
    assert rotated.returncode == 0 and "keeps working for 2 h" in rotated.stdout
    revoked = cli(
        central_db_url, "key", "revoke", str(site["site_id"]), "--prefix", site["key_prefix"]
    )
    assert revoked.returncode == 0 and site["key_prefix"] in revoked.stdout
    user = cli(
        central_db_url,
        "user",
        "create",
        "acme",
        "a@example.com",
        "--role",
        "admin",
        stdin=PASSWORD + "\n",
    )
    assert user.returncode == 0, user.stderr
    rollup = cli(central_db_url, "rollup", "--settle-minutes", "0")
    assert rollup.returncode == 0 and "recomputed 0 site-hour(s)" in rollup.stdout
    missing = cli(central_db_url, "site", "create", "nobody", "x")
    assert missing.returncode != 0 and "no tenant named 'nobody'" in missing.stderr
    with psycopg.connect(central_db_url) as conn:
        actions = [r[0] for r in conn.execute("SELECT action FROM audit_log ORDER BY id")]
        stored = scalar(conn, "SELECT password_hash FROM users")
    assert actions == [
        "tenant.create",
        "site.create",
        "key.create",
        "key.rotate",
        "key.revoke",
        "user.create",
    ]
    assert stored.startswith("$argon2id$") and PASSWORD not in stored
