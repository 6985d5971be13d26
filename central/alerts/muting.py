"""Silences and maintenance windows: what mutes an alert's e-mails (never its state).

A **silence** mutes the alerts it matches (tenant, and optionally a site, a meter, a rule)
from its start to its end. A **maintenance window** recurs weekly at a local wall-clock time in
an IANA time zone (so "Sundays 02:00 for 3 h in Europe/Paris" follows daylight saving), for one
site or all of the tenant's. A muted alert is still evaluated and shown; only its firing e-mail
waits (it goes out if the alert still fires when the mute ends). "Resolved" e-mails are never
muted: whoever was told it fires is told it stopped.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import psycopg

from central import audit

MAX_SILENCE = timedelta(days=90)
MAX_COMMENT = 500


class MutingError(ValueError):
    def __init__(self, problems: list[dict[str, str]]) -> None:
        super().__init__("; ".join(f"{p['field']}: {p['reason']}" for p in problems))
        self.problems = problems


@dataclass(frozen=True, slots=True)
class Silence:
    id: int
    tenant_id: int
    site_id: int | None
    meter_id: int | None
    rule_id: int | None
    starts_at: datetime
    ends_at: datetime
    comment: str
    created_by: str

    def matches(
        self, tenant_id: int, site_id: int | None, meter_id: int | None, rule_id: int
    ) -> bool:
        return (
            self.tenant_id == tenant_id
            and self.site_id in (None, site_id)
            and self.meter_id in (None, meter_id)
            and self.rule_id in (None, rule_id)
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "site_id": self.site_id,
            "meter_id": self.meter_id,
            "rule_id": self.rule_id,
            "starts_at": self.starts_at.isoformat(),
            "ends_at": self.ends_at.isoformat(),
            "comment": self.comment,
            "created_by": self.created_by,
        }


@dataclass(frozen=True, slots=True)
class Window:
    id: int
    tenant_id: int
    site_id: int | None
    name: str
    timezone: str
    weekdays: tuple[int, ...]  # ISO 1 = Monday
    start_time: time
    duration_minutes: int

    def active(self, now: datetime) -> bool:
        """Whether ``now`` falls in an occurrence (one may have started the day before, or
        up to a week before for a long one)."""
        zone = ZoneInfo(self.timezone)
        local = now.astimezone(zone)
        span = timedelta(minutes=self.duration_minutes)
        for back in range(0, span.days + 2):
            day: date = local.date() - timedelta(days=back)
            if day.isoweekday() not in self.weekdays:
                continue
            start = datetime.combine(day, self.start_time, tzinfo=zone).astimezone(UTC)
            if start <= now < start + span:
                return True
        return False

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "site_id": self.site_id,
            "name": self.name,
            "timezone": self.timezone,
            "weekdays": list(self.weekdays),
            "start_time": self.start_time.strftime("%H:%M"),
            "duration_minutes": self.duration_minutes,
        }


class Muting:
    """The silences and windows of the tenants being notified, asked per alert."""

    def __init__(self, silences: list[Silence], windows: list[Window], now: datetime) -> None:
        self.silences = [s for s in silences if s.starts_at <= now < s.ends_at]
        self.windows = [w for w in windows if w.active(now)]

    def muted_by(
        self, tenant_id: int, site_id: int | None, meter_id: int | None, rule_id: int
    ) -> str | None:
        """Why the alert is muted ("silence 3", "maintenance 'Sunday patching'"), or None."""
        for s in self.silences:
            if s.matches(tenant_id, site_id, meter_id, rule_id):
                return f"silence {s.id}"
        for w in self.windows:
            if w.tenant_id == tenant_id and site_id is not None and w.site_id in (None, site_id):
                return f"maintenance {w.name!r}"
        return None


def load(conn: psycopg.Connection[Any], tenant_ids: list[int], now: datetime) -> Muting:
    return Muting(
        list_silences(conn, tenant_ids, now, current_only=True),
        list_windows(conn, tenant_ids),
        now,
    )


def list_silences(
    conn: psycopg.Connection[Any], tenant_ids: list[int], now: datetime, *, current_only: bool
) -> list[Silence]:
    """The tenants' silences not yet over (``current_only``), or also the last 100 ended."""
    rows = conn.execute(
        """SELECT id, tenant_id, site_id, meter_id, rule_id, starts_at, ends_at, comment, created_by
           FROM alert_silences WHERE tenant_id = ANY(%s) AND (NOT %s OR ends_at > %s)
           ORDER BY ends_at DESC LIMIT 1000""",
        (tenant_ids, current_only, now),
    ).fetchall()
    return [Silence(*r) for r in rows]


def list_windows(conn: psycopg.Connection[Any], tenant_ids: list[int]) -> list[Window]:
    rows = conn.execute(
        """SELECT id, tenant_id, site_id, name, timezone, weekdays, start_time, duration_minutes
           FROM maintenance_windows WHERE tenant_id = ANY(%s) ORDER BY name""",
        (tenant_ids,),
    ).fetchall()
    return [Window(r[0], r[1], r[2], r[3], r[4], tuple(r[5]), r[6], r[7]) for r in rows]


def _scope(conn: psycopg.Connection[Any], tenant_id: int, body: dict[str, Any]) -> tuple[Any, ...]:
    problems: list[dict[str, str]] = []
    ids: list[int | None] = []
    for field, table in (("site_id", "sites"), ("meter_id", "meters"), ("rule_id", "alert_rules")):
        value = body.get(field)
        if value in (None, ""):
            ids.append(None)
            continue
        if isinstance(value, str) and value.isdigit():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 2**31:
            problems.append({"field": field, "reason": "expected an id or null"})
            ids.append(None)
            continue
        tenant_sql = {
            "sites": "SELECT tenant_id FROM sites WHERE id = %s",
            "meters": "SELECT s.tenant_id FROM meters m JOIN sites s ON s.id = m.site_id WHERE m.id = %s",
            "alert_rules": "SELECT tenant_id FROM alert_rules WHERE id = %s",
        }[table]
        row = conn.execute(tenant_sql, (value,)).fetchone()
        if row is None or row[0] != tenant_id:
            problems.append({"field": field, "reason": f"no such {field[:-3]} in your tenant"})
        ids.append(value)
    if problems:
        raise MutingError(problems)
    return tuple(ids)


def _when(value: Any, field: str, default: datetime | None) -> datetime:
    if value in (None, "") and default is not None:
        return default
    try:
        parsed = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        raise MutingError(
            [
                {
                    "field": field,
                    "reason": "expected an ISO 8601 time with a zone, e.g. 2026-12-01T18:00Z",
                }
            ]
        )
    return parsed


def create_silence(
    conn: psycopg.Connection[Any], tenant_id: int, body: Any, actor: str, now: datetime
) -> int:
    if not isinstance(body, dict):
        raise MutingError([{"field": "body", "reason": "expected a JSON object"}])
    site_id, meter_id, rule_id = _scope(conn, tenant_id, body)
    starts = _when(body.get("starts_at"), "starts_at", now)
    ends = _when(body.get("ends_at"), "ends_at", None)
    comment = body.get("comment", "")
    problems = []
    if not ends > starts or ends - starts > MAX_SILENCE or ends <= now:
        problems.append(
            {"field": "ends_at", "reason": "expected a future time after starts_at, within 90 days"}
        )
    if not isinstance(comment, str) or len(comment) > MAX_COMMENT:
        problems.append(
            {"field": "comment", "reason": f"expected at most {MAX_COMMENT} characters"}
        )
    if problems:
        raise MutingError(problems)
    row = conn.execute(
        """INSERT INTO alert_silences (tenant_id, site_id, meter_id, rule_id, starts_at, ends_at,
                  comment, created_by) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING id""",
        (tenant_id, site_id, meter_id, rule_id, starts, ends, comment, actor),
    ).fetchone()
    assert row is not None
    details = {"site_id": site_id, "meter_id": meter_id, "rule_id": rule_id,
               "starts_at": starts.isoformat(), "ends_at": ends.isoformat(), "comment": comment}  # fmt: skip
    audit.record(conn, tenant_id, actor, "silence.create", ("silence", row[0]), details=details)
    return int(row[0])


def end_silence(
    conn: psycopg.Connection[Any], tenant_id: int, silence_id: int, actor: str, now: datetime
) -> bool:
    """End a silence now (its alerts' firing e-mails then go out if they still fire)."""
    row = conn.execute(
        """UPDATE alert_silences
           SET starts_at = least(starts_at, %(now)s - interval '1 microsecond'), ends_at = %(now)s
           WHERE id = %(id)s AND tenant_id = %(tenant)s AND ends_at > %(now)s RETURNING id""",
        {"now": now, "id": silence_id, "tenant": tenant_id},
    ).fetchone()
    if row is not None:
        audit.record(conn, tenant_id, actor, "silence.end", ("silence", silence_id))
    return row is not None


def _zone(value: Any) -> str:
    if not isinstance(value, str) or len(value) > 64:
        raise ValueError
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError from None
    return value


def create_window(conn: psycopg.Connection[Any], tenant_id: int, body: Any, actor: str) -> int:
    if not isinstance(body, dict):
        raise MutingError([{"field": "body", "reason": "expected a JSON object"}])
    site_id, _, _ = _scope(conn, tenant_id, {"site_id": body.get("site_id")})
    problems: list[dict[str, str]] = []
    name = body.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > 100:
        problems.append({"field": "name", "reason": "expected 1 to 100 characters"})
    try:
        zone = _zone(body.get("timezone"))
    except ValueError:
        problems.append(
            {"field": "timezone", "reason": "expected an IANA zone such as Europe/Paris"}
        )
        zone = "UTC"
    days = body.get("weekdays")
    if isinstance(days, str):
        days = [int(d) for d in days.replace(" ", "").split(",") if d.isdigit()]
    if (
        not isinstance(days, list)
        or not days
        or not all(isinstance(d, int) and not isinstance(d, bool) and 1 <= d <= 7 for d in days)
    ):
        problems.append({"field": "weekdays", "reason": "expected ISO weekdays 1 (Monday) to 7"})
        days = []
    try:
        start = time.fromisoformat(body.get("start_time", ""))
        if start.tzinfo is not None:
            raise ValueError
    except (TypeError, ValueError):
        problems.append({"field": "start_time", "reason": "expected a local time such as 02:00"})
        start = time(0)
    duration = body.get("duration_minutes")
    if isinstance(duration, str) and duration.isdigit():
        duration = int(duration)
    if isinstance(duration, bool) or not isinstance(duration, int) or not 1 <= duration <= 10080:
        problems.append({"field": "duration_minutes", "reason": "expected 1 to 10080 minutes"})
    if problems:
        raise MutingError(problems)
    assert isinstance(name, str) and isinstance(duration, int)
    row = conn.execute(
        """INSERT INTO maintenance_windows (tenant_id, site_id, name, timezone, weekdays,
                  start_time, duration_minutes, created_by)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING id""",
        (tenant_id, site_id, name.strip(), zone, sorted(set(days)), start, duration, actor),
    ).fetchone()
    assert row is not None
    details = {"site_id": site_id, "name": name.strip(), "timezone": zone, "weekdays": sorted(set(days)),
               "start_time": start.strftime("%H:%M"), "duration_minutes": duration}  # fmt: skip
    audit.record(
        conn,
        tenant_id,
        actor,
        "maintenance.create",
        ("maintenance_window", row[0]),
        details=details,
    )
    return int(row[0])


def delete_window(
    conn: psycopg.Connection[Any], tenant_id: int, window_id: int, actor: str
) -> bool:
    row = conn.execute(
        "DELETE FROM maintenance_windows WHERE id = %s AND tenant_id = %s RETURNING name",
        (window_id, tenant_id),
    ).fetchone()
    if row is not None:
        audit.record(conn, tenant_id, actor, "maintenance.delete", ("maintenance_window", window_id),
              details={"name": row[0]})  # fmt: skip
    return row is not None


def known_zone(name: str) -> bool:
    return name in available_timezones()
