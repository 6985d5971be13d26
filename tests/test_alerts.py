"""Alerting end to end in one process with a moved clock: conditions from maintained state,
the pending -> firing -> resolved machine, grouping, muting, escalation — e-mails counted as a
real SMTP server (aiosmtpd) received them after the outbox drain."""

from __future__ import annotations

import re
from datetime import timedelta

import psycopg
import pytest

from central.alerts import muting, rules, views
from tests.alert_helpers import (
    ADMIN,
    T0,
    Fleet,
    every,
    kinds_of,
    post_readings,
    power_reading,
    send_mail,
)
from tests.central_fixtures import CentralServer
from tests.smtp_capture import Received, SmtpServer

STEP = timedelta(seconds=30)


def run(fleet: Fleet, smtp: SmtpServer, start, end, beat=(), **settings) -> None:
    """The worker's rhythm: evaluate every 30 s, then drain the outbox; the sites in ``beat``
    send their heartbeat every 5 minutes meanwhile."""
    for at in every(start, end, STEP):
        if at.second == 0 and at.minute % 5 == 0:
            for site in beat:
                fleet.heartbeat(site, at)
        assert fleet.evaluate(at, **settings).ran
        send_mail(fleet.db_url, smtp, at)


def links(mail: Received, section: str) -> set[int]:
    """Alert ids listed under a section (FIRING, RESOLVED …) of an e-mail."""
    text = mail.text()
    match = re.search(rf"^{section} \(\d+\)\n(.*?)(?:\n\n|\Z)", text, re.S | re.M)
    return {int(i) for i in re.findall(r"/ui/alerts/(\d+)", match.group(1))} if match else set()


@pytest.fixture
def fleet(central_db_url: str) -> Fleet:
    return Fleet(central_db_url).setup()


def test_heartbeat_missing_fires_once_and_resolves_once(
    fleet: Fleet, smtp_server: SmtpServer
) -> None:
    fleet.site("Plant 1")
    fleet.only_rules("heartbeat_missing")
    fleet.heartbeat("Plant 1", T0)

    run(fleet, smtp_server, T0, T0 + timedelta(minutes=40))
    fleet.heartbeat("Plant 1", T0 + timedelta(minutes=40, seconds=10))
    run(
        fleet,
        smtp_server,
        T0 + timedelta(minutes=40, seconds=30),
        T0 + timedelta(minutes=70),
        ["Plant 1"],
    )

    assert kinds_of(smtp_server.messages) == ["firing", "resolved"]
    firing, resolved = smtp_server.messages
    assert firing.rcpt_tos == [ADMIN]
    assert firing.subject == "[MeterIT] CRITICAL ACME / Plant 1: 1 firing"
    assert "no heartbeat from site Plant 1 since 2026-12-01 08:00 UTC" in firing.text()
    (instance,) = fleet.instances()
    assert links(firing, "FIRING") == links(resolved, "RESOLVED") == {instance["id"]}
    assert f"https://central.example/ui/alerts/{instance['id']}" in (firing.html() or "")
    # it fired at the first evaluation past 10 minutes, and resolved at the first one after
    assert instance["firing_since"] == T0 + timedelta(minutes=10, seconds=30)
    assert instance["resolved_at"] == T0 + timedelta(minutes=40, seconds=30)
    assert (instance["state"], instance["notified_state"]) == ("resolved", "resolved")


def test_flapping_point_sends_one_firing_and_one_resolved_per_repeat_interval(
    central_server: CentralServer, smtp_server: SmtpServer
) -> None:
    fleet = Fleet(central_server.db_url).setup()
    fleet.site("Plant 1", meter_count=1)
    fleet.only_rules()
    fleet.rule(
        name="Power high",
        kind="value_threshold",
        params={"point": "power_kw", "set": 500, "clear": 480},
    )
    # above and below the thresholds every 2 minutes for an hour (ingest keeps the latest value)
    for k in range(30):
        at = T0 + timedelta(minutes=2 * k)
        item = power_reading(at, 600.0 if k % 2 == 0 else 400.0)
        post_readings(central_server.base_url, fleet.api_keys["Plant 1"], [item], f"b{k}")
        run(fleet, smtp_server, at, at + timedelta(seconds=90))

    assert kinds_of(smtp_server.messages) == ["firing", "resolved"]
    opened = [i for i in fleet.instances() if i["firing_since"] is not None]
    assert len(opened) == 15, "every flap is still recorded and shown"
    # the next repeat interval tells it again if it still fires then
    last = T0 + timedelta(hours=4, minutes=1)
    item = power_reading(last, 700.0)
    post_readings(central_server.base_url, fleet.api_keys["Plant 1"], [item], "later")
    run(fleet, smtp_server, last, last + timedelta(minutes=2))
    assert kinds_of(smtp_server.messages) == ["firing", "resolved", "firing"]


def test_value_threshold_clears_only_past_the_clear_threshold(
    central_server: CentralServer, smtp_server: SmtpServer
) -> None:
    fleet = Fleet(central_server.db_url).setup()
    fleet.site("Plant 1", meter_count=1)
    fleet.only_rules()
    fleet.rule(
        name="Power high",
        kind="value_threshold",
        for_s=60,
        params={"point": "power_kw", "set": 500, "clear": 450},
    )
    states = []
    for k, value in enumerate([510, 490, 490, 460, 440, 490]):
        at = T0 + timedelta(minutes=2 * k)
        item = power_reading(at, value)
        post_readings(central_server.base_url, fleet.api_keys["Plant 1"], [item], f"b{k}")
        fleet.evaluate(at)
        fleet.evaluate(at + timedelta(seconds=61))
        states.append(fleet.instances()[0]["state"] if fleet.instances() else None)
    # 510 sets it; 490 and 460 keep it (above 450); 440 clears it; 490 is below 500: stays clear
    assert states == ["firing", "firing", "firing", "firing", "resolved", "resolved"]


def test_every_firing_sent_gets_its_resolved(fleet: Fleet, smtp_server: SmtpServer) -> None:
    for name in ("A", "B", "C"):
        fleet.site(name, meter_count=3)
    fleet.only_rules("heartbeat_missing", "meter_unreachable", "backlog")
    down = T0 - timedelta(minutes=10)
    fleet.heartbeat("A", T0, {"m0": ("unreachable", down), "m1": ("unreachable", down)})
    fleet.heartbeat("B", T0, backlog=50000, oldest_unsynced_age_s=120.0)
    fleet.heartbeat("C", T0)
    run(fleet, smtp_server, T0, T0 + timedelta(minutes=8))
    # A recovers one meter, C goes quiet, B drains
    fleet.heartbeat(
        "A",
        T0 + timedelta(minutes=8, seconds=10),
        {"m0": ("reachable", T0), "m1": ("unreachable", down)},
    )
    fleet.heartbeat("B", T0 + timedelta(minutes=8, seconds=10))
    run(
        fleet,
        smtp_server,
        T0 + timedelta(minutes=8, seconds=30),
        T0 + timedelta(minutes=25),
        ["A", "B"],
    )
    # then everything is well again
    for name in ("A", "B", "C"):
        fleet.heartbeat(name, T0 + timedelta(minutes=25, seconds=10), {"m1": ("reachable", T0)})
    run(
        fleet,
        smtp_server,
        T0 + timedelta(minutes=25, seconds=30),
        T0 + timedelta(minutes=45),
        ["A", "B", "C"],
    )

    told_firing = set().union(*(links(m, "FIRING") for m in smtp_server.messages))
    told_resolved = set().union(*(links(m, "RESOLVED") for m in smtp_server.messages))
    assert len(told_firing) == 4  # A/m0, A/m1, B backlog, C heartbeat
    assert told_firing == told_resolved
    assert {i["state"] for i in fleet.instances()} == {"resolved"}


def test_a_silence_mutes_until_it_ends(fleet: Fleet, smtp_server: SmtpServer) -> None:
    fleet.site("A")
    fleet.site("B")
    fleet.only_rules("heartbeat_missing")
    fleet.heartbeat("A", T0)
    fleet.heartbeat("B", T0)
    with fleet.tx() as conn:
        silence = muting.create_silence(
            conn, fleet.tenant_id,
            {"site_id": fleet.site_ids["A"], "ends_at": (T0 + timedelta(hours=1)).isoformat(), "comment": "works"},
            "user:ops@example.com", T0,
        )  # fmt: skip
        conn.commit()
    run(fleet, smtp_server, T0, T0 + timedelta(minutes=30))
    assert [m.subject for m in smtp_server.messages] == ["[MeterIT] CRITICAL ACME / B: 1 firing"]

    with fleet.tx() as conn:
        assert muting.end_silence(
            conn, fleet.tenant_id, silence, "user:ops@example.com", T0 + timedelta(minutes=30)
        )
        conn.commit()
    run(fleet, smtp_server, T0 + timedelta(minutes=30, seconds=30), T0 + timedelta(minutes=40))
    assert [m.subject for m in smtp_server.messages][1:] == [
        "[MeterIT] CRITICAL ACME / A: 1 firing"
    ]
    with psycopg.connect(fleet.db_url) as conn:
        actions = [
            r[0]
            for r in conn.execute(
                "SELECT action FROM audit_log WHERE action LIKE 'silence.%' ORDER BY id"
            )
        ]
    assert actions == ["silence.create", "silence.end"]


def test_a_muted_alert_that_resolves_unseen_sends_nothing(
    fleet: Fleet, smtp_server: SmtpServer
) -> None:
    fleet.site("A")
    fleet.only_rules("heartbeat_missing")
    fleet.heartbeat("A", T0)
    with fleet.tx() as conn:
        muting.create_silence(
            conn, fleet.tenant_id, {"ends_at": (T0 + timedelta(hours=1)).isoformat()}, "cli", T0
        )
        conn.commit()
    run(fleet, smtp_server, T0, T0 + timedelta(minutes=20))
    fleet.heartbeat("A", T0 + timedelta(minutes=20, seconds=5))
    run(
        fleet,
        smtp_server,
        T0 + timedelta(minutes=20, seconds=30),
        T0 + timedelta(minutes=40),
        ["A"],
    )
    assert smtp_server.messages == []
    assert fleet.instances()[0]["state"] == "resolved"


def test_a_maintenance_window_mutes_in_the_sites_time_zone(
    fleet: Fleet, smtp_server: SmtpServer
) -> None:
    fleet.site("Paris")
    fleet.only_rules("heartbeat_missing")
    fleet.heartbeat("Paris", T0)
    # T0 is Tuesday 2026-12-01 08:00 UTC = 09:00 in Paris; the window is 09:00-10:00 Paris time
    with fleet.tx() as conn:
        for name, days in (("Tuesday patching", [2]), ("Wednesday patching", [3])):
            muting.create_window(
                conn, fleet.tenant_id,
                {"site_id": fleet.site_ids["Paris"], "name": name, "timezone": "Europe/Paris",
                 "weekdays": days, "start_time": "09:00", "duration_minutes": 60},
                "cli",
            )  # fmt: skip
        conn.commit()
    run(fleet, smtp_server, T0, T0 + timedelta(minutes=59, seconds=30))
    assert smtp_server.messages == [], "muted inside the window"
    run(fleet, smtp_server, T0 + timedelta(minutes=60), T0 + timedelta(minutes=62))
    assert kinds_of(smtp_server.messages) == ["firing"], "told once the window is over"


def test_maintenance_window_follows_daylight_saving() -> None:
    window = muting.Window(
        1,
        1,
        None,
        "nightly",
        "Europe/Paris",
        (1, 2, 3, 4, 5, 6, 7),
        __import__("datetime").time(2, 30),
        60,
    )
    summer = T0.replace(month=7, day=1, hour=0, minute=45)  # 02:45 in Paris (UTC+2)
    winter = T0.replace(hour=1, minute=45)  # 02:45 in Paris (UTC+1)
    assert window.active(summer) and window.active(winter)
    assert not window.active(winter + timedelta(hours=1))


def test_meters_of_a_site_without_heartbeat_are_not_news(
    fleet: Fleet, smtp_server: SmtpServer
) -> None:
    fleet.site("A", meter_count=3)
    fleet.only_rules("heartbeat_missing", "meter_unreachable")
    down = T0 - timedelta(minutes=1)
    fleet.heartbeat("A", T0, {f"m{n}": ("unreachable", down) for n in range(3)})
    run(fleet, smtp_server, T0, T0 + timedelta(minutes=30))
    # the meters fired at minute 4, before the heartbeat was missing: one e-mail; the site going
    # silent then is one more, which does not repeat the meters
    subjects = [m.subject for m in smtp_server.messages]
    assert subjects == ["[MeterIT] ACME / A: 3 firing", "[MeterIT] CRITICAL ACME / A: 1 firing"]
    assert "no heartbeat" in smtp_server.messages[1].text()
    assert "STILL FIRING" not in smtp_server.messages[1].text()


def test_escalation_when_nobody_acknowledges(fleet: Fleet, smtp_server: SmtpServer) -> None:
    fleet.site("A")
    fleet.site("B")
    fleet.only_rules()
    fleet.rule(
        name="Down", kind="heartbeat_missing", severity="critical", params={"minutes": 10},
        recipients=["oncall@example.com"], escalation_recipients=["boss@example.com"], escalate_after_s=1800,
    )  # fmt: skip
    fleet.heartbeat("A", T0)
    fleet.heartbeat("B", T0)
    run(fleet, smtp_server, T0, T0 + timedelta(minutes=20))
    with fleet.tx() as conn:
        b = next(
            i
            for i in views.alerts(conn, fleet.tenant_id, "open")
            if i["site_id"] == fleet.site_ids["B"]
        )
        assert views.acknowledge(conn, fleet.tenant_id, b["id"], "user:oncall@example.com")
        conn.commit()
    run(fleet, smtp_server, T0 + timedelta(minutes=20, seconds=30), T0 + timedelta(minutes=45))
    escalated = [m for m in smtp_server.messages if m.rcpt_tos == ["boss@example.com"]]
    assert [m.subject for m in escalated] == ["[MeterIT] ESCALATED ACME / A: 1 unacknowledged"]
    # resolved goes to whoever heard of it, the escalation contact included
    fleet.heartbeat("A", T0 + timedelta(minutes=45, seconds=10))
    run(
        fleet,
        smtp_server,
        T0 + timedelta(minutes=45, seconds=30),
        T0 + timedelta(minutes=55),
        ["A", "B"],
    )
    last = smtp_server.messages[-2:]
    assert sorted(m.rcpt_tos[0] for m in last) == ["boss@example.com", "oncall@example.com"]
    assert kinds_of(last) == ["resolved", "resolved"]


def test_rules_are_validated_and_defaults_exist(fleet: Fleet) -> None:
    with fleet.tx() as conn:
        kinds = sorted(r["kind"] for r in rules.list_rules(conn, fleet.tenant_id))
    assert kinds == sorted(k for _, k, _, _ in rules.DEFAULTS)
    with pytest.raises(rules.RuleError) as err:
        rules.parse_rule(
            {"name": "", "kind": "value_threshold", "params": {"set": 5, "clear": 9, "extra": 1},
             "recipients": ["not an address"], "for_s": -1}
        )  # fmt: skip
    fields = {p["field"] for p in err.value.problems}
    assert fields == {"name", "params.point", "params.clear", "params.extra", "recipients", "for_s"}


def test_pruning_keeps_open_alerts_and_mail_not_yet_sent(fleet: Fleet) -> None:
    from central import retention
    from central.mail import outbox

    fleet.site("A")
    fleet.site("B")
    fleet.only_rules("heartbeat_missing")
    fleet.heartbeat("A", T0)
    fleet.heartbeat("B", T0)
    fleet.evaluate(T0 + timedelta(minutes=11))
    fleet.heartbeat("A", T0 + timedelta(minutes=12))
    fleet.evaluate(T0 + timedelta(minutes=12))  # A resolved (long ago), B still firing
    with fleet.tx() as conn:
        for subject, status in (("sent", "sent"), ("failed", "failed"), ("queued", "queued")):
            outbox.enqueue(conn, ["ops@example.com"], subject, "x", now=T0)
            conn.execute(
                "UPDATE mail_outbox SET status = %s WHERE status = 'queued' AND message_id ="
                " (SELECT max(id) FROM mail_messages)",
                (status,),
            )
        conn.commit()
        done = retention.prune(
            conn,
            timedelta(days=30),
            timedelta(days=90),
            alerts=timedelta(hours=1),
            mail=timedelta(hours=1),
        )
        left = sorted(r[0] for r in conn.execute("SELECT subject FROM mail_messages"))
    assert (done["alert_instances"], done["mail_messages"]) == (1, 1)
    assert [(i["key"], i["state"]) for i in fleet.instances()] == [
        (f"site:{fleet.site_ids['B']}", "firing")
    ]
    # the alert e-mail about B is still queued too: kept
    assert left == ["[MeterIT] CRITICAL ACME / B: 1 firing", "failed", "queued"]


def test_a_meter_answering_without_values_alerts_like_an_unreachable_one(fleet: Fleet) -> None:
    fleet.site("A", meter_count=2)
    fleet.only_rules("meter_unreachable")
    since = T0 - timedelta(minutes=6)
    fleet.heartbeat("A", T0, {"m0": ("no-values", since), "m1": ("reachable", since)})
    fleet.evaluate(T0)
    with fleet.tx() as conn:
        (alert,) = views.alerts(conn, fleet.tenant_id, "firing", now=T0)
    assert alert["summary"] == "meter m0 of site A gives no values since 2026-12-01 07:54 UTC"


def test_disabling_a_rule_or_changing_its_kind_resolves_its_alerts(fleet: Fleet) -> None:
    fleet.site("A")
    fleet.only_rules()
    rule = fleet.rule(name="Quiet", kind="heartbeat_missing", params={"minutes": 10})
    fleet.heartbeat("A", T0)
    fleet.evaluate(T0 + timedelta(minutes=11))
    assert [i["state"] for i in fleet.instances()] == ["firing"]
    with fleet.tx() as conn:
        spec = rules.parse_rule({"name": "Quiet", "kind": "backlog"})
        rules.update_rule(conn, fleet.tenant_id, rule, spec, "cli")
        conn.commit()
    assert [i["state"] for i in fleet.instances()] == ["resolved"]
    with fleet.tx() as conn:
        spec = rules.parse_rule({"name": "Quiet", "kind": "heartbeat_missing", "enabled": False})
        rules.update_rule(conn, fleet.tenant_id, rule, spec, "cli")
        conn.commit()
    fleet.evaluate(T0 + timedelta(minutes=12))
    assert [i["state"] for i in fleet.instances()] == ["resolved"], "disabled: nothing new opens"
