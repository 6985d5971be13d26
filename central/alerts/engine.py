"""The alert state machine, written down once (as healthchecks' ``sendalerts``):

    (nothing) --condition holds--> pending --held for the rule's `for`--> firing
    pending --condition clears--> resolved (never fired: nobody is told)
    firing  --condition clears--> resolved (resolved_at; its e-mail is owed if firing was told)

A rule with ``for`` = 0 goes straight to firing. Each instance is a row, so a restart in the
middle of a ``for`` keeps ``pending_since`` and fires on time; every transition is a
compare-and-set on the state it leaves, and the unique index on open (rule, key) makes a second
evaluator's insert a no-op, so nothing fires twice even if two evaluations ever overlapped.

A key that starts firing again within ``repeat_interval`` of its previous firing e-mail is
flapping: its firing is told no sooner than that e-mail's time plus ``repeat_interval``
(``notify_after``), so a flapping point costs at most one firing and one resolved e-mail per
repeat interval. Work is proportional to what is open or changed, never to the fleet.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import psycopg

from central.alerts.conditions import Condition

logger = logging.getLogger(__name__)


@dataclass
class Changes:
    pending: list[int] = field(default_factory=list)  # new instances waiting out `for`
    firing: list[int] = field(default_factory=list)
    resolved: list[int] = field(default_factory=list)  # were firing
    cleared: list[int] = field(default_factory=list)  # were pending, never fired

    def as_dict(self) -> dict[str, int]:
        return {
            "pending": len(self.pending),
            "firing": len(self.firing),
            "resolved": len(self.resolved),
            "cleared": len(self.cleared),
        }


@dataclass(frozen=True, slots=True)
class _Open:
    id: int
    state: str
    pending_since: datetime
    for_s: int
    summary: str
    value: float | None


def _open_instances(conn: psycopg.Connection[Any]) -> dict[tuple[int, str], _Open]:
    rows = conn.execute(
        """SELECT i.rule_id, i.key, i.id, i.state, i.pending_since, r.for_s, i.summary, i.value
           FROM alert_instances i JOIN alert_rules r ON r.id = i.rule_id
           WHERE i.state <> 'resolved'"""
    ).fetchall()
    return {(r[0], r[1]): _Open(*r[2:]) for r in rows}


def _rule_for(conn: psycopg.Connection[Any], rule_ids: set[int]) -> dict[int, int]:
    rows = conn.execute(
        "SELECT id, for_s FROM alert_rules WHERE id = ANY(%s)", (list(rule_ids),)
    ).fetchall()
    return {r[0]: r[1] for r in rows}


def _notify_after(
    conn: psycopg.Connection[Any], keys: list[tuple[int, str]], now: datetime, repeat: timedelta
) -> dict[tuple[int, str], datetime]:
    """For keys about to fire: when their firing may be told (flap damping)."""
    if not keys:
        return {}
    rows = conn.execute(
        """SELECT k.rule_id, k.key, max(i.notified_at)
           FROM unnest(%s::int[], %s::text[]) AS k (rule_id, key)
           JOIN alert_instances i ON i.rule_id = k.rule_id AND i.key = k.key
                AND i.notified_at IS NOT NULL
           GROUP BY k.rule_id, k.key""",
        ([k[0] for k in keys], [k[1] for k in keys]),
    ).fetchall()
    return {(r[0], r[1]): max(now, r[2] + repeat) for r in rows if r[2] + repeat > now}


def apply(
    conn: psycopg.Connection[Any],
    conditions: list[Condition],
    now: datetime,
    repeat_interval: timedelta,
) -> Changes:
    """Move every instance to what ``conditions`` (all that hold at ``now``) say; one commit."""
    changes = Changes()
    current = {(c.rule_id, c.key): c for c in conditions}
    opened = _open_instances(conn)
    for_s = _rule_for(conn, {c.rule_id for c in conditions if (c.rule_id, c.key) not in opened})

    to_fire: list[tuple[int, tuple[int, str]]] = []
    for key, inst in opened.items():
        if key not in current:
            (changes.cleared if inst.state == "pending" else changes.resolved).append(inst.id)
        elif inst.state == "pending" and now >= inst.pending_since + timedelta(seconds=inst.for_s):
            to_fire.append((inst.id, key))
    new = [c for key, c in current.items() if key not in opened]
    born_firing = [(c.rule_id, c.key) for c in new if for_s.get(c.rule_id, 0) == 0]
    hold = _notify_after(conn, [k for _, k in to_fire] + born_firing, now, repeat_interval)

    if new:
        # one statement for any number of new alerts (a storm of thousands is one round trip)
        rows = [_new_row(c, for_s.get(c.rule_id, 0), now, hold) for c in new]
        born = conn.execute(
            """INSERT INTO alert_instances (rule_id, tenant_id, site_id, meter_id, point_id,
                      key, state, summary, value, pending_since, firing_since, notify_after)
               SELECT * FROM unnest(%s::int[], %s::int[], %s::int[], %s::int[], %s::int[],
                      %s::text[], %s::text[], %s::text[], %s::float8[], %s::timestamptz[],
                      %s::timestamptz[], %s::timestamptz[])
               ON CONFLICT (rule_id, key) WHERE state <> 'resolved' DO NOTHING
               RETURNING id, state""",
            [list(column) for column in zip(*rows, strict=True)],
        ).fetchall()
        for alert_id, state in born:
            (changes.firing if state == "firing" else changes.pending).append(alert_id)
    if to_fire:
        fired = conn.execute(
            """UPDATE alert_instances i SET state = 'firing', firing_since = %s,
                      notify_after = x.notify_after
               FROM unnest(%s::bigint[], %s::timestamptz[]) AS x (id, notify_after)
               WHERE i.id = x.id AND i.state = 'pending' RETURNING i.id""",
            (now, [i for i, _ in to_fire], [hold.get(k, now) for _, k in to_fire]),
        ).fetchall()
        changes.firing.extend(r[0] for r in fired)
    for ids, state in ((changes.resolved, "firing"), (changes.cleared, "pending")):
        if ids:
            done = conn.execute(
                """UPDATE alert_instances SET state = 'resolved', resolved_at = %s
                   WHERE id = ANY(%s) AND state = %s RETURNING id""",
                (now, ids, state),
            ).fetchall()
            ids[:] = [r[0] for r in done]
    _refresh_summaries(conn, current, opened)
    conn.commit()
    if changes.firing or changes.resolved:
        logger.info(
            "alerts: %d firing, %d resolved, %d pending, %d cleared",
            len(changes.firing),
            len(changes.resolved),
            len(changes.pending),
            len(changes.cleared),
        )
    return changes


def _new_row(
    c: Condition, for_s: int, now: datetime, hold: dict[tuple[int, str], datetime]
) -> tuple[Any, ...]:
    firing = for_s == 0
    return (
        c.rule_id,
        c.tenant_id,
        c.site_id,
        c.meter_id,
        c.point_id,
        c.key,
        "firing" if firing else "pending",
        c.summary,
        c.value,
        now,
        now if firing else None,
        hold.get((c.rule_id, c.key), now) if firing else None,
    )


def _refresh_summaries(
    conn: psycopg.Connection[Any],
    current: dict[tuple[int, str], Condition],
    opened: dict[tuple[int, str], _Open],
) -> None:
    """Open instances show what their condition says now (a meter down 40 min, not 5); only
    those whose text changed are written."""
    stale = [
        (inst.id, current[key].summary, current[key].value)
        for key, inst in opened.items()
        if key in current and inst.summary != current[key].summary
    ]
    if stale:
        conn.execute(
            """UPDATE alert_instances i SET summary = x.summary, value = x.value
               FROM unnest(%s::bigint[], %s::text[], %s::float8[]) AS x (id, summary, value)
               WHERE i.id = x.id AND i.state <> 'resolved'""",
            ([s[0] for s in stale], [s[1] for s in stale], [s[2] for s in stale]),
        )
