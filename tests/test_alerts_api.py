"""The operator API for alerts through gunicorn: rules, testing a rule on current data, alerts
and acknowledgement, silences, maintenance windows, the outbox — roles and tenants enforced,
every change audited."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import requests

from central.mail import outbox
from tests.alert_helpers import Fleet
from tests.central_fixtures import CentralServer

PASSWORD = "correct horse battery"


def login(
    server: CentralServer, email: str, role: str, tenant: str = "test-tenant"
) -> dict[str, str]:
    server.create_user(email, PASSWORD, role, tenant)
    token = requests.post(server.url("/api/v1/auth/token"), auth=(email, PASSWORD), timeout=10)
    return {"Authorization": f"Bearer {token.json()['token']}"}


def test_rules_crud_and_test_against_current_data(central_server: CentralServer) -> None:
    admin = login(central_server, "admin@example.com", "admin")
    viewer = login(central_server, "viewer@example.com", "viewer")
    site = central_server.create_site("Plant 1")
    fleet = Fleet(
        central_server.db_url, tenant_id=site.tenant_id, site_ids={"Plant 1": site.site_id}
    )
    fleet.heartbeat("Plant 1", datetime.now(UTC) - timedelta(minutes=30))

    listed = requests.get(
        central_server.url("/api/v1/alert-rules"), headers=viewer, timeout=10
    ).json()
    assert {r["kind"] for r in listed["rules"]} >= {"heartbeat_missing", "backlog", "no_data"}

    rule = {"name": "Quiet site", "kind": "heartbeat_missing", "severity": "critical",
            "params": {"minutes": 20}, "recipients": ["Night@Example.com"], "site_id": site.site_id}  # fmt: skip
    refused = requests.post(
        central_server.url("/api/v1/alert-rules"), json=rule, headers=viewer, timeout=10
    )
    assert refused.status_code == 403
    made = requests.post(
        central_server.url("/api/v1/alert-rules"), json=rule, headers=admin, timeout=10
    )
    assert made.status_code == 201, made.text
    assert made.json()["recipients"] == ["night@example.com"]
    rule_id = made.json()["id"]

    # the site has been silent 30 minutes: a 20-minute rule finds it, a 60-minute one does not
    tried = requests.post(
        central_server.url("/api/v1/alert-rules/test"), json=rule, headers=admin, timeout=10
    )
    assert tried.status_code == 200, tried.text
    assert [m["key"] for m in tried.json()["matches"]] == [f"site:{site.site_id}"]
    longer = {**rule, "params": {"minutes": 60}}
    tried = requests.post(
        central_server.url("/api/v1/alert-rules/test"), json=longer, headers=admin, timeout=10
    )
    assert tried.json() == {"matches": [], "truncated": False}

    bad = requests.put(
        central_server.url(f"/api/v1/alert-rules/{rule_id}"),
        json={**rule, "kind": "value_threshold", "params": {"set": 1, "clear": 2}},
        headers=admin,
        timeout=10,
    )
    assert bad.status_code == 422
    assert {d["field"] for d in bad.json()["details"]} == {"params.point", "params.clear"}
    put = requests.put(
        central_server.url(f"/api/v1/alert-rules/{rule_id}"), json=longer, headers=admin, timeout=10
    )
    assert put.status_code == 200 and put.json()["params"] == {"minutes": 60}
    gone = requests.delete(
        central_server.url(f"/api/v1/alert-rules/{rule_id}"), headers=admin, timeout=10
    )
    assert gone.status_code == 204
    assert (
        requests.get(
            central_server.url(f"/api/v1/alert-rules/{rule_id}"), headers=admin, timeout=10
        ).status_code
        == 404
    )

    with psycopg.connect(central_server.db_url) as conn:
        actions = [r[0] for r in conn.execute(
            "SELECT action FROM audit_log WHERE action LIKE 'alert_rule.%%' ORDER BY id")]  # fmt: skip
    assert actions == ["alert_rule.create", "alert_rule.update", "alert_rule.delete"], (
        "a test saves nothing"
    )


def test_alerts_acknowledge_and_silence_through_the_api(central_server: CentralServer) -> None:
    operator = login(central_server, "op@example.com", "operator")
    viewer = login(central_server, "viewer@example.com", "viewer")
    other = login(central_server, "other@example.com", "admin", tenant="other-tenant")
    site = central_server.create_site("Plant 1")
    fleet = Fleet(
        central_server.db_url, tenant_id=site.tenant_id, site_ids={"Plant 1": site.site_id}
    )
    now = datetime.now(UTC)
    fleet.heartbeat("Plant 1", now - timedelta(minutes=30))
    fleet.evaluate(now)

    alerts = requests.get(
        central_server.url("/api/v1/alerts?state=firing"), headers=viewer, timeout=10
    ).json()
    (alert,) = alerts["alerts"]
    assert (alert["kind"], alert["state"], alert["site_name"]) == (
        "heartbeat_missing",
        "firing",
        "Plant 1",
    )
    url = central_server.url(f"/api/v1/alerts/{alert['id']}")
    assert requests.get(url, headers=other, timeout=10).status_code == 404, "another tenant's"
    assert requests.post(url + "/acknowledge", headers=viewer, timeout=10).status_code == 403
    acked = requests.post(url + "/acknowledge", headers=operator, timeout=10)
    assert acked.status_code == 200 and acked.json()["acknowledged_by"] == "user:op@example.com"
    assert requests.post(url + "/acknowledge", headers=operator, timeout=10).status_code == 404

    silence = requests.post(
        central_server.url("/api/v1/silences"),
        json={
            "site_id": site.site_id,
            "ends_at": (now + timedelta(hours=2)).isoformat(),
            "comment": "storm",
        },
        headers=operator,
        timeout=10,
    )
    assert silence.status_code == 201, silence.text
    assert (
        requests.get(url, headers=viewer, timeout=10).json()["muted_by"]
        == f"silence {silence.json()['id']}"
    )
    ended = requests.post(
        central_server.url(f"/api/v1/silences/{silence.json()['id']}/end"),
        headers=operator,
        timeout=10,
    )
    assert ended.status_code == 204
    assert requests.get(url, headers=viewer, timeout=10).json()["muted_by"] is None

    window = {
        "name": "Sunday",
        "timezone": "Mars/Olympus",
        "weekdays": [7],
        "start_time": "02:00",
        "duration_minutes": 60,
    }
    admin = login(central_server, "admin@example.com", "admin")
    bad = requests.post(
        central_server.url("/api/v1/maintenance-windows"), json=window, headers=admin, timeout=10
    )
    assert bad.status_code == 422 and bad.json()["details"][0]["field"] == "timezone"
    made = requests.post(
        central_server.url("/api/v1/maintenance-windows"),
        json={**window, "timezone": "Europe/Paris"},
        headers=admin,
        timeout=10,
    )
    assert made.status_code == 201 and made.json()["weekdays"] == [7]


def test_the_outbox_is_visible_and_a_failed_mail_can_be_queued_again(
    central_server: CentralServer,
) -> None:
    admin = login(central_server, "admin@example.com", "admin")
    site = central_server.create_site("Plant 1")
    with psycopg.connect(central_server.db_url) as conn:
        outbox.enqueue(conn, ["a@example.com"], "hello", "text", tenant_id=site.tenant_id)
        conn.execute("UPDATE mail_outbox SET status = 'failed', last_error = '550 no such mailbox'")
        conn.commit()
    listed = requests.get(central_server.url("/api/v1/mail"), headers=admin, timeout=10).json()
    assert (listed["failed"], listed["last_error"]) == (1, "550 no such mailbox")
    delivery = listed["deliveries"][0]["id"]
    again = requests.post(
        central_server.url(f"/api/v1/mail/{delivery}/requeue"), headers=admin, timeout=10
    )
    assert again.status_code == 204
    listed = requests.get(
        central_server.url("/api/v1/mail?status=queued"), headers=admin, timeout=10
    ).json()
    assert [d["id"] for d in listed["deliveries"]] == [delivery]
