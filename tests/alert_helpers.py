"""What the alert tests share: a tenant with an admin (the default recipient), a site with
meters, heartbeats and readings written through central's own code, one evaluation or one
outbox drain at a chosen time, and the e-mails aiosmtpd received, by kind."""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import requests

from central import health_state, meters, sites, tenants, users
from central.alerts import evaluate as evaluation
from central.alerts import rules
from central.mail import drain
from central.mail.smtp import SmtpConfig, SmtpTransport
from central.settings import CentralSettings
from common import wire
from common.heartbeat import parse_heartbeat
from common.timestamps import format_ts
from tests.smtp_capture import Received, SmtpServer

ADMIN = "ops@example.com"
PUBLIC_URL = "https://central.example"


def settings(db_url: str, **overrides: Any) -> CentralSettings:
    return CentralSettings(database_url=db_url, public_url=PUBLIC_URL, **overrides)


@dataclass
class Fleet:
    """One tenant, its admin, and sites made through ``central.sites`` / ``central.meters``."""

    db_url: str
    tenant_id: int = 0
    site_ids: dict[str, int] = field(default_factory=dict)
    api_keys: dict[str, str] = field(default_factory=dict)

    def tx(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self.db_url, autocommit=False)

    def setup(self, tenant: str = "ACME") -> Fleet:
        with self.tx() as conn:
            self.tenant_id = tenants.create_tenant(conn, tenant, "cli")
            users.create_user(
                conn, self.tenant_id, email=ADMIN, password="password-1", role="admin", actor="cli"
            )
            conn.commit()
        return self

    def site(self, name: str, meter_count: int = 0, points: tuple[str, ...] = ("power_kw",)) -> int:
        with self.tx() as conn:
            created = sites.create_site(conn, self.tenant_id, name, "cli")
            for n in range(meter_count):
                body = {
                    "external_id": f"m{n}",
                    "address": f"10.0.{n // 250}.{n % 250 + 1}",
                    "device_instance": n + 1,
                    "points": [
                        {"name": p, "object": f"analog-input,{i + 1}", "unit": "kW"}
                        for i, p in enumerate(points)
                    ],
                }
                meters.create_meter(
                    conn, created.site_id, self.tenant_id, meters.parse_meter(body), "cli"
                )
            conn.commit()
        self.site_ids[name] = created.site_id
        self.api_keys[name] = created.key.plaintext
        return created.site_id

    def heartbeat(
        self,
        site: str,
        at: datetime,
        meter_states: dict[str, tuple[str, datetime]] | None = None,
        **fields: Any,
    ) -> None:
        """What the heartbeat endpoint stores, received at ``at`` (the endpoint uses the wall
        clock; tests of timing need theirs)."""
        body: dict[str, Any] = {
            "sent_at": format_ts(at),
            "backlog": 0,
            "oldest_unsynced_age_s": None,
            "dropped_readings": 0,
            "versions": {"meterit": "test"},
            "collection_paused": False,
            "upload_paused": False,
            "meters": [
                {
                    "external_id": ext,
                    "state": state,
                    "since": format_ts(since),
                    "last_error": None,
                }
                for ext, (state, since) in (meter_states or {}).items()
            ],
        }
        body.update(fields)
        with self.tx() as conn:
            health_state.store(conn, self.site_ids[site], parse_heartbeat(body), at)
            conn.commit()

    def rule(self, **body: Any) -> int:
        with self.tx() as conn:
            rule_id = rules.create_rule(conn, self.tenant_id, rules.parse_rule(body), "cli")
            conn.commit()
        return rule_id

    def only_rules(self, *kinds: str) -> None:
        """Disable the default rules not named (so a test hears only what it is about)."""
        with self.tx() as conn:
            conn.execute(
                "UPDATE alert_rules SET enabled = false WHERE tenant_id = %s AND NOT kind = ANY(%s)",
                (self.tenant_id, list(kinds)),
            )
            conn.commit()

    def evaluate(self, at: datetime, **overrides: Any) -> evaluation.Outcome:
        with psycopg.connect(self.db_url) as conn:
            return evaluation.run(conn, settings(self.db_url, **overrides), at)

    def instances(self) -> list[dict[str, Any]]:
        with psycopg.connect(self.db_url) as conn:
            cur = conn.execute(
                """SELECT i.id, r.kind, i.key, i.state, i.pending_since, i.firing_since,
                          i.resolved_at, i.notified_state FROM alert_instances i
                   JOIN alert_rules r ON r.id = i.rule_id ORDER BY i.id"""
            )
            names = [d.name for d in cur.description or []]
            return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def send_mail(db_url: str, server: SmtpServer, at: datetime, cap: int = 1000) -> drain.DrainResult:
    config = SmtpConfig(
        "127.0.0.1", server.port, "none", "", None, "MeterIT <alerts@meterit.test>", 10, ""
    )
    with psycopg.connect(db_url) as conn, SmtpTransport(config) as transport:
        return drain.run(conn, transport, at, cap)


def kinds_of(received: list[Received]) -> list[str]:
    """Each e-mail as 'firing', 'resolved', 'firing+resolved', 'still' or 'escalated'."""
    out = []
    for mail in received:
        subject = mail.subject
        if "ESCALATED" in subject:
            out.append("escalated")
            continue
        parts = [
            k
            for k in ("firing", "resolved")
            if f" {k}" in subject and "still firing" not in subject
        ]
        out.append("+".join(parts) if parts else "still")
    return out


def power_reading(at: datetime, value: float) -> dict[str, Any]:
    """One power_kw reading of meter m0, as ``post_readings`` sends it."""
    return {"meter": "m0", "point": "power_kw", "ts": at.isoformat(), "value": value, "unit": "kW"}


def post_readings(
    base_url: str, api_key: str, items: list[dict[str, Any]], batch: str
) -> dict[str, Any]:
    answer = requests.post(
        base_url + wire.SYNC_READINGS,
        data=gzip.compress(json.dumps({"readings": items}).encode()),
        headers={
            wire.HEADER_API_KEY: api_key,
            wire.HEADER_IDEMPOTENCY_KEY: batch,
            "Content-Type": "application/json",
            "Content-Encoding": "gzip",
        },
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


def every(start: datetime, end: datetime, step: timedelta) -> list[datetime]:
    out = []
    at = start
    while at <= end:
        out.append(at)
        at += step
    return out


T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
