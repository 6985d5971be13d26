"""Who is told what, and when — Alertmanager's model over the alert rows.

Alerts are grouped per tenant and site (central-wide ones in a group of their own). A group's
news (alerts that started firing, alerts that resolved after their firing was told) waits
``group_wait`` from its first news, and at least ``group_interval`` after the group's last
e-mail, then goes out as ONE e-mail per set of recipients listing everything: 500 meters going
down together are one e-mail. With no news, still-firing unacknowledged alerts are repeated
every ``repeat_interval``.

Muted (not e-mailed while it lasts, still shown): a silence, a maintenance window, or the
site's own heartbeat-missing alert firing (inhibition: the meters of a site that is down are
not news). "Resolved" is never muted: every firing that was told is told resolved.
Escalation: an alert firing past its rule's ``escalate_after_s`` without acknowledgement is
e-mailed once to the rule's escalation list.

Everything is written in one transaction with the e-mails it queues (``central.mail.outbox``).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg

from central.alerts import messages, muting
from central.mail import outbox

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Policy:
    group_wait: timedelta
    group_interval: timedelta
    repeat_interval: timedelta
    public_url: str


@dataclass(frozen=True, slots=True)
class _Alert:
    id: int
    tenant_id: int
    tenant: str
    site_key: int
    site: str | None
    meter_id: int | None
    rule_id: int
    rule_name: str
    kind: str
    severity: str
    summary: str
    state: str
    pending_since: datetime
    firing_since: datetime | None
    resolved_at: datetime | None
    notified_state: str | None
    notify_after: datetime | None
    acknowledged: bool
    escalated: bool
    escalate_after_s: int | None
    recipients: tuple[str, ...]
    escalation_recipients: tuple[str, ...]

    def line(self) -> messages.Line:
        since = self.firing_since or self.pending_since
        return messages.Line(
            self.id, self.severity, self.rule_name, self.summary, since, self.resolved_at
        )


def _alerts(conn: psycopg.Connection[Any]) -> list[_Alert]:
    """Open alerts and resolved ones still owed their e-mail."""
    rows = conn.execute(
        """SELECT i.id, i.tenant_id, t.name, coalesce(i.site_id, 0), s.name, i.meter_id,
                  r.id, r.name, r.kind, r.severity, i.summary, i.state, i.pending_since,
                  i.firing_since, i.resolved_at, i.notified_state, i.notify_after,
                  i.acknowledged_at IS NOT NULL, i.escalated_at IS NOT NULL, r.escalate_after_s,
                  r.recipients, r.escalation_recipients
           FROM alert_instances i
           JOIN alert_rules r ON r.id = i.rule_id
           JOIN tenants t ON t.id = i.tenant_id
           LEFT JOIN sites s ON s.id = i.site_id
           WHERE i.state = 'firing' OR (i.state = 'resolved' AND i.notified_state = 'firing')
           ORDER BY i.tenant_id, i.site_id, r.severity, i.id"""
    ).fetchall()
    return [_Alert(*r[:20], tuple(r[20]), tuple(r[21])) for r in rows]  # type: ignore[call-arg]


def _default_recipients(
    conn: psycopg.Connection[Any], tenant_ids: list[int]
) -> dict[int, tuple[str, ...]]:
    rows = conn.execute(
        """SELECT tenant_id, array_agg(email ORDER BY email) FROM users
           WHERE tenant_id = ANY(%s) AND active AND role IN ('admin', 'operator')
           GROUP BY tenant_id""",
        (tenant_ids,),
    ).fetchall()
    return {r[0]: tuple(r[1]) for r in rows}


def _groups(
    conn: psycopg.Connection[Any],
) -> dict[tuple[int, int], tuple[datetime | None, datetime | None]]:
    rows = conn.execute("SELECT tenant_id, site_key, news_since, last_sent_at FROM alert_groups")
    return {(r[0], r[1]): (r[2], r[3]) for r in rows.fetchall()}


class _Outgoing:
    """E-mails of one pass: recipient sets -> alerts, per group and section."""

    def __init__(self, defaults: dict[int, tuple[str, ...]]) -> None:
        self.defaults = defaults

    def recipients(self, alert: _Alert, *, resolved: bool = False) -> tuple[str, ...]:
        people = alert.recipients or self.defaults.get(alert.tenant_id, ())
        if resolved and alert.escalated:
            people = people + alert.escalation_recipients
        return tuple(dict.fromkeys(people))


def run(conn: psycopg.Connection[Any], now: datetime, policy: Policy) -> int:
    """Queue what is due at ``now``; returns how many e-mails (messages) were queued."""
    alerts = _alerts(conn)
    if not alerts:
        conn.commit()
        return 0
    tenants = sorted({a.tenant_id for a in alerts})
    mutes = muting.load(conn, tenants, now)
    down_sites = {
        (a.tenant_id, a.site_key)
        for a in alerts
        if a.kind == "heartbeat_missing" and a.state == "firing"
    }
    out = _Outgoing(_default_recipients(conn, tenants))
    groups = _groups(conn)

    def muted(a: _Alert) -> bool:
        if a.kind != "heartbeat_missing" and (a.tenant_id, a.site_key) in down_sites:
            return True
        return mutes.muted_by(a.tenant_id, a.site_key or None, a.meter_id, a.rule_id) is not None

    by_group: dict[tuple[int, int], list[_Alert]] = defaultdict(list)
    for a in alerts:
        by_group[(a.tenant_id, a.site_key)].append(a)

    queued = 0
    for key, members in by_group.items():
        news_since, last_sent = groups.get(key, (None, None))
        firing = [
            a for a in members
            if a.state == "firing" and a.notified_state is None
            and (a.notify_after is None or a.notify_after <= now) and not muted(a)
        ]  # fmt: skip
        resolved = [a for a in members if a.state == "resolved"]
        told = [
            a for a in members
            if a.state == "firing" and a.notified_state == "firing" and not a.acknowledged
            and not muted(a)
        ]  # fmt: skip
        if firing or resolved:
            if news_since is None:
                news_since = now
                _save_group(conn, key, news_since, last_sent)
            due = now >= news_since + policy.group_wait and (
                last_sent is None or now >= last_sent + policy.group_interval
            )
        else:
            due = bool(told) and last_sent is not None and now >= last_sent + policy.repeat_interval
        if due:
            queued += _send_group(
                conn,
                now=now,
                out=out,
                policy=policy,
                head=members[0],
                firing=firing,
                resolved=resolved,
                told=told,
            )
            _mark(conn, firing, resolved, now)
            _save_group(conn, key, None, now)
        queued += _escalate(conn, out=out, policy=policy, head=members[0], told=told, now=now)
    conn.commit()
    return queued


def _save_group(
    conn: psycopg.Connection[Any],
    key: tuple[int, int],
    news_since: datetime | None,
    last_sent: datetime | None,
) -> None:
    conn.execute(
        """INSERT INTO alert_groups (tenant_id, site_key, news_since, last_sent_at)
           VALUES (%s, %s, %s, %s) ON CONFLICT (tenant_id, site_key)
           DO UPDATE SET news_since = excluded.news_since, last_sent_at = excluded.last_sent_at""",
        (*key, news_since, last_sent),
    )


def _send_group(
    conn: psycopg.Connection[Any],
    *,
    out: _Outgoing,
    policy: Policy,
    head: _Alert,
    firing: list[_Alert],
    resolved: list[_Alert],
    told: list[_Alert],
    now: datetime,
) -> int:
    """One e-mail per distinct set of recipients, each listing what concerns them."""
    per_person: dict[str, list[tuple[str, _Alert]]] = defaultdict(list)
    for section, items in (("firing", firing), ("resolved", resolved), ("still", told)):
        for a in items:
            for person in out.recipients(a, resolved=section == "resolved"):
                per_person[person].append((section, a))
    by_content: dict[tuple[tuple[str, int], ...], list[str]] = defaultdict(list)
    for person, listed in per_person.items():
        by_content[tuple((s, a.id) for s, a in listed)].append(person)
    if not per_person:
        logger.warning(
            "alerts of tenant %s site %s: nobody to e-mail (no recipients on the rules, no "
            "active admin or operator); they are shown in the UI only",
            head.tenant,
            head.site or "central",
        )
    alerts = {a.id: a for a in firing + resolved + told}
    for content, people in by_content.items():
        sections: dict[str, list[messages.Line]] = defaultdict(list)
        for section, alert_id in content:
            sections[section].append(alerts[alert_id].line())
        subject, text, markup = messages.compose(
            tenant=head.tenant,
            site=head.site,
            firing=sections["firing"],
            resolved=sections["resolved"],
            still_firing=sections["still"],
            public_url=policy.public_url,
        )
        outbox.enqueue(conn, people, subject, text, html=markup, tenant_id=head.tenant_id, now=now)
    return len(by_content)


def _mark(
    conn: psycopg.Connection[Any], firing: list[_Alert], resolved: list[_Alert], now: datetime
) -> None:
    if firing:
        conn.execute(
            """UPDATE alert_instances SET notified_state = 'firing', notified_at = %s
               WHERE id = ANY(%s) AND state = 'firing' AND notified_state IS NULL""",
            (now, [a.id for a in firing]),
        )
    if resolved:
        conn.execute(
            """UPDATE alert_instances SET notified_state = 'resolved'
               WHERE id = ANY(%s) AND state = 'resolved' AND notified_state = 'firing'""",
            ([a.id for a in resolved],),
        )


def _escalate(
    conn: psycopg.Connection[Any],
    *,
    out: _Outgoing,
    policy: Policy,
    head: _Alert,
    told: list[_Alert],
    now: datetime,
) -> int:
    due = [
        a for a in told
        if a.escalate_after_s and a.escalation_recipients and not a.escalated
        and a.firing_since is not None and now >= a.firing_since + timedelta(seconds=a.escalate_after_s)
    ]  # fmt: skip
    if not due:
        return 0
    by_people: dict[tuple[str, ...], list[_Alert]] = defaultdict(list)
    for a in due:
        by_people[a.escalation_recipients].append(a)
    for people, items in by_people.items():
        subject, text, markup = messages.compose(
            tenant=head.tenant,
            site=head.site,
            firing=[],
            resolved=[],
            still_firing=[a.line() for a in items],
            public_url=policy.public_url,
            escalation_after_s=min(a.escalate_after_s or 0 for a in items),
        )
        outbox.enqueue(
            conn, list(people), subject, text, html=markup, tenant_id=head.tenant_id, now=now
        )
    conn.execute(
        "UPDATE alert_instances SET escalated_at = %s WHERE id = ANY(%s) AND escalated_at IS NULL",
        (now, [a.id for a in due]),
    )
    return len(by_people)
