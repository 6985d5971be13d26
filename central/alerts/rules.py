"""Alert rules: the kinds, their parameters, the defaults every tenant gets, and their editing.

A rule is per tenant, scoped to every site, one site, or one meter; it has a severity, a
``for`` duration the condition must hold before the alert fires, recipients (none: the
tenant's admins and operators), an optional escalation list, and an enabled flag. Each change
writes its audit entry in the caller's transaction.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from central import audit
from central.mail.outbox import MailError, normalize_address

SEVERITIES = ("info", "warning", "critical")
MAX_FOR_S = 7 * 86400
MAX_RECIPIENTS = 50
MAX_NAME = 100


@dataclass(frozen=True, slots=True)
class Param:
    name: str
    type: type  # int, float or str
    help: str
    default: Any = None  # None: required
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] | None = None
    optional: bool = False


@dataclass(frozen=True, slots=True)
class Kind:
    title: str
    help: str
    params: tuple[Param, ...]


def _minutes(name: str, default: int, help: str) -> Param:
    return Param(name, int, help, default, 1, 10080)


KINDS: dict[str, Kind] = {
    "heartbeat_missing": Kind(
        "Site heartbeat missing",
        "no heartbeat from the site's appliance for the given minutes: it or its link is down",
        (_minutes("minutes", 10, "minutes without a heartbeat"),),
    ),
    "backlog": Kind(
        "Appliance backlog",
        "the appliance holds more unsent readings than allowed, or its oldest is too old",
        (
            Param("readings", int, "unsent readings above which it alerts", 10000, 1, 1e12),
            _minutes("oldest_minutes", 60, "age of the oldest unsent reading, in minutes"),
        ),
    ),
    "meter_unreachable": Kind(
        "Meter unreachable",
        "the appliance reports the meter unreachable (or answering without values) that long",
        (_minutes("minutes", 5, "minutes the meter has been unreachable"),),
    ),
    "dropped_readings": Kind(
        "Readings dropped or quarantined",
        "the appliance dropped or quarantined readings; clears after a window with none new",
        (_minutes("window_minutes", 60, "minutes without new ones before it clears"),),
    ),
    "value_threshold": Kind(
        "Value threshold",
        "a data point's latest value crosses the set threshold; it clears only past the "
        "clear threshold (hysteresis)",
        (
            Param("point", str, "data point name, e.g. power_kw (every meter in scope)"),
            Param("op", str, "above (>) or below (<)", ">", choices=(">", "<")),
            Param("set", float, "threshold at which it alerts"),
            Param(
                "clear", float, "threshold at which it clears; default the set one", optional=True
            ),
        ),
    ),
    "no_data": Kind(
        "No data",
        "no new reading of a data point for the given minutes while its site is online",
        (
            _minutes("minutes", 30, "minutes without a new reading"),
            Param("point", str, "only this data point name; default every point", optional=True),
        ),
    ),
    "central_health": Kind(
        "Central health",
        "central's ingest refuses too many readings over a window",
        (
            Param("ingest_error_percent", float, "percent of readings refused", 5, 0, 100),
            _minutes("window_minutes", 15, "window the percentage is taken over, in minutes"),
        ),
    ),
}

# (name, kind, severity, params): what every new tenant gets; migration 0004 gave the same to
# the tenants that existed before it
DEFAULTS: tuple[tuple[str, str, str, dict[str, Any]], ...] = (
    ("Site heartbeat missing", "heartbeat_missing", "critical", {"minutes": 10}),
    ("Appliance backlog", "backlog", "warning", {"readings": 10000, "oldest_minutes": 60}),
    ("Meter unreachable", "meter_unreachable", "warning", {"minutes": 5}),
    ("Readings dropped or quarantined", "dropped_readings", "warning", {"window_minutes": 60}),
    ("No data from a point", "no_data", "warning", {"minutes": 30}),
    (
        "Central health",
        "central_health",
        "critical",
        {"ingest_error_percent": 5, "window_minutes": 15},
    ),
)


class RuleError(ValueError):
    """The rule as given is invalid; ``problems`` names each bad field."""

    def __init__(self, problems: list[dict[str, str]]) -> None:
        super().__init__("; ".join(f"{p['field']}: {p['reason']}" for p in problems))
        self.problems = problems


class NotFound(LookupError):
    """No such rule (or site, meter) in the tenant."""


@dataclass(frozen=True, slots=True)
class RuleSpec:
    name: str
    kind: str
    severity: str
    site_id: int | None
    meter_id: int | None
    params: dict[str, Any]
    for_s: int
    recipients: list[str]
    escalation_recipients: list[str]
    escalate_after_s: int | None
    enabled: bool

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "severity": self.severity,
            "site_id": self.site_id,
            "meter_id": self.meter_id,
            "params": self.params,
            "for_s": self.for_s,
            "recipients": self.recipients,
            "escalation_recipients": self.escalation_recipients,
            "escalate_after_s": self.escalate_after_s,
            "enabled": self.enabled,
        }


def _number(value: Any, typ: type, lo: float | None, hi: float | None) -> int | float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("expected a number")
    if not math.isfinite(value) or (typ is int and value != int(value)):
        raise ValueError("expected a whole number" if typ is int else "expected a finite number")
    out = int(value) if typ is int else float(value)
    if (lo is not None and out < lo) or (hi is not None and out > hi):
        raise ValueError(f"expected {lo:g} to {hi:g}")
    return out


def parse_params(kind: str, raw: Any, problems: list[dict[str, str]]) -> dict[str, Any]:
    spec = KINDS[kind]
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        problems.append({"field": "params", "reason": "expected an object"})
        return {}
    out: dict[str, Any] = {}
    for unknown in sorted(set(raw) - {p.name for p in spec.params}):
        problems.append({"field": f"params.{unknown}", "reason": f"not a parameter of {kind}"})
    for p in spec.params:
        value = raw.get(p.name)
        if value is None or value == "":
            if p.default is not None:
                out[p.name] = p.default
            elif not p.optional:
                problems.append({"field": f"params.{p.name}", "reason": f"required: {p.help}"})
            continue
        try:
            if p.type is str:
                if not isinstance(value, str) or not value.strip() or len(value) > 100:
                    raise ValueError("expected text of 1 to 100 characters")
                if p.choices and value not in p.choices:
                    raise ValueError("expected one of " + ", ".join(p.choices))
                out[p.name] = value.strip()
            else:
                out[p.name] = _number(value, p.type, p.minimum, p.maximum)
        except ValueError as err:
            problems.append({"field": f"params.{p.name}", "reason": f"{err} ({p.help})"})
    if kind == "value_threshold" and "set" in out:
        clear = out.setdefault("clear", out["set"])
        wrong = clear > out["set"] if out.get("op") == ">" else clear < out["set"]
        if wrong:
            side = "at or below" if out.get("op") == ">" else "at or above"
            problems.append(
                {"field": "params.clear", "reason": f"must be {side} the set threshold"}
            )
    return out


def _addresses(raw: Any, field: str, problems: list[dict[str, str]]) -> list[str]:
    if raw is None:
        return []
    if isinstance(raw, str):
        raw = [a for a in raw.replace(";", ",").replace("\n", ",").split(",") if a.strip()]
    if not isinstance(raw, list) or len(raw) > MAX_RECIPIENTS:
        problems.append(
            {"field": field, "reason": f"expected a list of at most {MAX_RECIPIENTS} addresses"}
        )
        return []
    out: list[str] = []
    for item in raw:
        try:
            out.append(normalize_address(item if isinstance(item, str) else repr(item)))
        except MailError as err:
            problems.append({"field": field, "reason": str(err)})
    return list(dict.fromkeys(out))


def _optional_id(raw: Any, field: str, problems: list[dict[str, str]]) -> int | None:
    if raw is None or raw == "":
        return None
    if isinstance(raw, str) and raw.strip().isdigit():
        raw = int(raw)
    if isinstance(raw, bool) or not isinstance(raw, int) or not 0 < raw < 2**31:
        problems.append({"field": field, "reason": "expected an id or null"})
        return None
    return raw


def parse_rule(body: Any) -> RuleSpec:
    """A rule from its JSON (API) or form (UI) shape; RuleError lists every bad field."""
    if not isinstance(body, dict):
        raise RuleError([{"field": "body", "reason": "expected a JSON object"}])
    problems: list[dict[str, str]] = []
    name = body.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME:
        problems.append({"field": "name", "reason": f"expected 1 to {MAX_NAME} characters"})
        name = ""
    kind = body.get("kind")
    if kind not in KINDS:
        problems.append({"field": "kind", "reason": "expected one of " + ", ".join(KINDS)})
        raise RuleError(problems)
    severity = body.get("severity", "warning")
    if severity not in SEVERITIES:
        problems.append({"field": "severity", "reason": "expected " + ", ".join(SEVERITIES)})
    params = parse_params(kind, body.get("params"), problems)
    for_s: Any = body.get("for_s", 0)
    try:
        for_s = int(_number(for_s if for_s is not None else 0, int, 0, MAX_FOR_S))
    except ValueError as err:
        problems.append({"field": "for_s", "reason": f"{err} (seconds)"})
        for_s = 0
    escalate: Any = body.get("escalate_after_s")
    if escalate is not None and escalate != "":
        try:
            escalate = int(_number(escalate, int, 60, MAX_FOR_S))
        except ValueError as err:
            problems.append({"field": "escalate_after_s", "reason": f"{err} (seconds)"})
            escalate = None
    else:
        escalate = None
    enabled = body.get("enabled", True)
    if not isinstance(enabled, bool):
        problems.append({"field": "enabled", "reason": "expected true or false"})
        enabled = True
    spec = RuleSpec(
        name=name.strip(),
        kind=kind,
        severity=severity if severity in SEVERITIES else "warning",
        site_id=_optional_id(body.get("site_id"), "site_id", problems),
        meter_id=_optional_id(body.get("meter_id"), "meter_id", problems),
        params=params,
        for_s=for_s,
        recipients=_addresses(body.get("recipients"), "recipients", problems),
        escalation_recipients=_addresses(
            body.get("escalation_recipients"), "escalation_recipients", problems
        ),
        escalate_after_s=escalate,
        enabled=enabled,
    )
    if spec.escalation_recipients and spec.escalate_after_s is None:
        problems.append(
            {"field": "escalate_after_s", "reason": "required with escalation recipients"}
        )
    if kind == "central_health" and (spec.site_id or spec.meter_id):
        problems.append({"field": "site_id", "reason": "central health has no site scope"})
    if problems:
        raise RuleError(problems)
    return spec


def _check_scope(conn: psycopg.Connection[Any], tenant_id: int, spec: RuleSpec) -> None:
    if spec.site_id is not None:
        row = conn.execute(
            "SELECT 1 FROM sites WHERE id = %s AND tenant_id = %s", (spec.site_id, tenant_id)
        ).fetchone()
        if row is None:
            raise RuleError([{"field": "site_id", "reason": "no such site in your tenant"}])
    if spec.meter_id is not None:
        row = conn.execute(
            """SELECT m.site_id FROM meters m JOIN sites s ON s.id = m.site_id
               WHERE m.id = %s AND s.tenant_id = %s""",
            (spec.meter_id, tenant_id),
        ).fetchone()
        if row is None or (spec.site_id is not None and row[0] != spec.site_id):
            raise RuleError([{"field": "meter_id", "reason": "no such meter in the scope"}])


_COLUMNS = """id, name, kind, severity, site_id, meter_id, params, for_s, recipients,
              escalation_recipients, escalate_after_s, enabled, created_at, updated_at"""


def _row(r: Any) -> dict[str, Any]:
    return {
        "id": r[0],
        "name": r[1],
        "kind": r[2],
        "severity": r[3],
        "site_id": r[4],
        "meter_id": r[5],
        "params": r[6],
        "for_s": r[7],
        "recipients": list(r[8]),
        "escalation_recipients": list(r[9]),
        "escalate_after_s": r[10],
        "enabled": r[11],
        "created_at": r[12].isoformat(),
        "updated_at": r[13].isoformat(),
    }


def list_rules(conn: psycopg.Connection[Any], tenant_id: int) -> list[dict[str, Any]]:
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM alert_rules WHERE tenant_id = %s ORDER BY name",
        (tenant_id,),
    ).fetchall()
    return [_row(r) for r in rows]


def get_rule(conn: psycopg.Connection[Any], tenant_id: int, rule_id: int) -> dict[str, Any]:
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM alert_rules WHERE tenant_id = %s AND id = %s",
        (tenant_id, rule_id),
    ).fetchone()
    if row is None:
        raise NotFound(f"no alert rule with id {rule_id}")
    return _row(row)


def _values(spec: RuleSpec) -> tuple[Any, ...]:
    return (
        spec.name,
        spec.kind,
        spec.severity,
        spec.site_id,
        spec.meter_id,
        Jsonb(spec.params),
        spec.for_s,
        spec.recipients,
        spec.escalation_recipients,
        spec.escalate_after_s,
        spec.enabled,
    )


def create_rule(conn: psycopg.Connection[Any], tenant_id: int, spec: RuleSpec, actor: str) -> int:
    _check_scope(conn, tenant_id, spec)
    row = conn.execute(
        """INSERT INTO alert_rules (name, kind, severity, site_id, meter_id, params, for_s,
                  recipients, escalation_recipients, escalate_after_s, enabled, tenant_id)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
           ON CONFLICT (tenant_id, name) DO NOTHING RETURNING id""",
        (*_values(spec), tenant_id),
    ).fetchone()
    if row is None:
        raise RuleError([{"field": "name", "reason": f"a rule named {spec.name!r} exists"}])
    audit.record(
        conn, tenant_id, actor, "alert_rule.create", ("alert_rule", row[0]), details=spec.as_json()
    )
    return int(row[0])


def update_rule(
    conn: psycopg.Connection[Any], tenant_id: int, rule_id: int, spec: RuleSpec, actor: str
) -> None:
    """Replace the rule. Its open alerts keep their clocks; if the kind changed they are
    resolved now (they no longer describe what the rule checks), and whoever was told they
    fire is told they resolved."""
    _check_scope(conn, tenant_id, spec)
    conn.execute(
        """UPDATE alert_instances i SET state = 'resolved', resolved_at = now()
           FROM alert_rules r
           WHERE r.id = i.rule_id AND r.id = %s AND r.tenant_id = %s AND r.kind <> %s
             AND i.state <> 'resolved'""",
        (rule_id, tenant_id, spec.kind),
    )
    try:
        row = conn.execute(
            """UPDATE alert_rules SET name = %s, kind = %s, severity = %s, site_id = %s,
                      meter_id = %s, params = %s, for_s = %s, recipients = %s,
                      escalation_recipients = %s, escalate_after_s = %s, enabled = %s,
                      updated_at = now()
               WHERE id = %s AND tenant_id = %s RETURNING id""",
            (*_values(spec), rule_id, tenant_id),
        ).fetchone()
    except psycopg.errors.UniqueViolation:
        raise RuleError(
            [{"field": "name", "reason": f"a rule named {spec.name!r} exists"}]
        ) from None
    if row is None:
        raise NotFound(f"no alert rule with id {rule_id}")
    audit.record(
        conn, tenant_id, actor, "alert_rule.update", ("alert_rule", rule_id), details=spec.as_json()
    )


def delete_rule(conn: psycopg.Connection[Any], tenant_id: int, rule_id: int, actor: str) -> None:
    """Delete the rule with its alerts (e-mails already queued still go out). No "resolved"
    e-mail follows for its firing alerts: disabling the rule instead resolves them and tells."""
    row = conn.execute(
        "DELETE FROM alert_rules WHERE id = %s AND tenant_id = %s RETURNING name",
        (rule_id, tenant_id),
    ).fetchone()
    if row is None:
        raise NotFound(f"no alert rule with id {rule_id}")
    audit.record(
        conn,
        tenant_id,
        actor,
        "alert_rule.delete",
        ("alert_rule", rule_id),
        details={"name": row[0]},
    )


def create_defaults(conn: psycopg.Connection[Any], tenant_id: int) -> None:
    """The default rules of a new tenant (in the tenant's creating transaction)."""
    with conn.cursor() as cur:
        cur.executemany(
            """INSERT INTO alert_rules (tenant_id, name, kind, severity, params)
               VALUES (%s, %s, %s, %s, %s)""",
            [(tenant_id, name, kind, sev, Jsonb(params)) for name, kind, sev, params in DEFAULTS],
        )
