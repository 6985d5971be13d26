"""Alerts as the faces show them (operator UI, API): lists, one alert, acknowledgement, the
firing counts per site for the dashboard, and "test a rule against current data"."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import psycopg

from central import audit
from central.alerts import conditions, muting, rules

WHICH = ("open", "firing", "pending", "resolved", "all")

_COLUMNS = """i.id, i.rule_id, r.name, r.kind, r.severity, i.site_id, s.name, i.meter_id,
              i.point_id, i.key, i.state, i.summary, i.value, i.pending_since, i.firing_since,
              i.resolved_at, i.notified_state, i.acknowledged_at, i.acknowledged_by,
              i.escalated_at, i.tenant_id"""
_NAMES = (
    "id", "rule_id", "rule_name", "kind", "severity", "site_id", "site_name", "meter_id",
    "point_id", "key", "state", "summary", "value", "pending_since", "firing_since",
    "resolved_at", "notified_state", "acknowledged_at", "acknowledged_by", "escalated_at",
    "tenant_id",
)  # fmt: skip


def _as_dict(row: Any, mutes: muting.Muting | None) -> dict[str, Any]:
    item = dict(zip(_NAMES, row, strict=True))
    item["muted_by"] = (
        mutes.muted_by(item["tenant_id"], item["site_id"], item["meter_id"], item["rule_id"])
        if mutes is not None and item["state"] != "resolved"
        else None
    )
    del item["tenant_id"]
    return item


def json_ready(item: dict[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in item.items()}


def alerts(
    conn: psycopg.Connection[Any],
    tenant_id: int,
    which: str = "open",
    *,
    site_id: int | None = None,
    before_id: int | None = None,
    limit: int = 200,
    now: datetime | None = None,
) -> list[dict[str, Any]]:
    """Newest first; ``which`` is open (pending and firing), firing, pending, resolved or all."""
    states = {
        "open": ["pending", "firing"],
        "firing": ["firing"],
        "pending": ["pending"],
        "resolved": ["resolved"],
        "all": ["pending", "firing", "resolved"],
    }[which]
    rows = conn.execute(
        f"""SELECT {_COLUMNS} FROM alert_instances i
            JOIN alert_rules r ON r.id = i.rule_id LEFT JOIN sites s ON s.id = i.site_id
            WHERE i.tenant_id = %(tenant)s AND i.state = ANY(%(states)s)
              AND (%(site)s::int IS NULL OR i.site_id = %(site)s)
              AND (%(before)s::bigint IS NULL OR i.id < %(before)s)
            ORDER BY i.id DESC LIMIT %(limit)s""",
        {
            "tenant": tenant_id,
            "states": states,
            "site": site_id,
            "before": before_id,
            "limit": limit,
        },
    ).fetchall()
    mutes = (
        muting.load(conn, [tenant_id], now or datetime.now(UTC)) if which != "resolved" else None
    )
    return [_as_dict(r, mutes) for r in rows]


def alert(conn: psycopg.Connection[Any], tenant_id: int, alert_id: int) -> dict[str, Any] | None:
    row = conn.execute(
        f"""SELECT {_COLUMNS} FROM alert_instances i
            JOIN alert_rules r ON r.id = i.rule_id LEFT JOIN sites s ON s.id = i.site_id
            WHERE i.tenant_id = %s AND i.id = %s""",
        (tenant_id, alert_id),
    ).fetchone()
    if row is None:
        return None
    return _as_dict(row, muting.load(conn, [tenant_id], datetime.now(UTC)))


def acknowledge(conn: psycopg.Connection[Any], tenant_id: int, alert_id: int, actor: str) -> bool:
    """Acknowledge an open alert: no more repeats or escalation for it. False if not open."""
    row = conn.execute(
        """UPDATE alert_instances SET acknowledged_at = now(), acknowledged_by = %s
           WHERE id = %s AND tenant_id = %s AND state <> 'resolved' AND acknowledged_at IS NULL
           RETURNING summary""",
        (actor, alert_id, tenant_id),
    ).fetchone()
    if row is not None:
        audit.record(
            conn,
            tenant_id,
            actor,
            "alert.acknowledge",
            ("alert", alert_id),
            details={"summary": row[0]},
        )
    return row is not None


def firing_by_site(conn: psycopg.Connection[Any], tenant_id: int) -> dict[int, dict[str, int]]:
    """site id -> {"critical": n, "warning": n, "info": n} of its firing alerts."""
    rows = conn.execute(
        """SELECT i.site_id, r.severity, count(*) FROM alert_instances i
           JOIN alert_rules r ON r.id = i.rule_id
           WHERE i.tenant_id = %s AND i.state = 'firing' AND i.site_id IS NOT NULL
           GROUP BY i.site_id, r.severity""",
        (tenant_id,),
    ).fetchall()
    out: dict[int, dict[str, int]] = {}
    for site_id, severity, n in rows:
        out.setdefault(site_id, {})[severity] = n
    return out


class _Rollback(Exception):
    pass


def try_rule(
    conn: psycopg.Connection[Any],
    tenant_id: int,
    spec: rules.RuleSpec,
    *,
    late_s: float,
    now: datetime | None = None,
    limit: int = 200,
) -> tuple[list[conditions.Condition], bool]:
    """What the rule would report right now, without saving it: (conditions, truncated).
    The rule is written in a savepoint that is rolled back, so the very same SQL as the
    evaluation runs, and nothing (not even an audit entry) remains."""
    found: list[conditions.Condition] = []
    try:
        with conn.transaction():
            rule_id = rules.create_rule(conn, tenant_id, _unique_name(spec), "test")
            found = conditions.collect(
                conn, now or datetime.now(UTC), late_s, (spec.kind,), rule_id
            )
            raise _Rollback
    except _Rollback:
        pass
    return found[:limit], len(found) > limit


def _unique_name(spec: rules.RuleSpec) -> rules.RuleSpec:
    # a test of an edited rule must not collide with the saved rule's name
    from dataclasses import replace

    return replace(
        spec, name=f"{spec.name[:60]} (test {datetime.now(UTC).timestamp()})", enabled=True
    )
