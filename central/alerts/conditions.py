"""What is wrong right now: one SQL query per rule kind over maintained state.

Each query takes every enabled rule of its kind (all tenants at once) and returns only the
things whose condition holds, so an evaluation costs what is wrong plus a pass over small
per-site and per-meter tables (``sites``, ``site_health``, ``meter_health``, ``point_latest``);
it never reads the readings table. ``now`` is a parameter: tests and the ``alerts evaluate
--at`` command move the clock.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg


@dataclass(frozen=True, slots=True)
class Condition:
    rule_id: int
    tenant_id: int
    key: str  # the thing within the rule: site:12, meter:34, point:56, central
    site_id: int | None
    meter_id: int | None
    point_id: int | None
    summary: str
    value: float | None


_RULES = "r.kind = %(kind)s AND r.enabled AND (%(rule)s::int IS NULL OR r.id = %(rule)s)"
_SITES = """JOIN sites s ON s.tenant_id = r.tenant_id AND s.active
                AND (r.site_id IS NULL OR s.id = r.site_id)"""

# summaries name times, not ages, so an open alert's text changes only when its facts do
_TS = "to_char(timezone('UTC', %s), 'YYYY-MM-DD HH24:MI \"UTC\"')"

QUERIES: dict[str, str] = {
    "heartbeat_missing": f"""
        SELECT r.id, r.tenant_id, 'site:' || s.id, s.id, NULL::int, NULL::int,
               format('no heartbeat from site %%s since %%s', s.name, _TS_(s.last_heartbeat_at)),
               extract(epoch FROM %(now)s - s.last_heartbeat_at) / 60
        FROM alert_rules r {_SITES}
        WHERE {_RULES} AND s.last_heartbeat_at
              < %(now)s - make_interval(mins => (r.params->>'minutes')::int)""",
    "backlog": f"""
        SELECT r.id, r.tenant_id, 'site:' || s.id, s.id, NULL::int, NULL::int,
               format('site %%s holds %%s unsent readings, the oldest %%s min old', s.name,
                      h.backlog, floor(coalesce(h.oldest_unsynced_age_s, 0) / 60)),
               h.backlog::float8
        FROM alert_rules r {_SITES} JOIN site_health h ON h.site_id = s.id
        WHERE {_RULES} AND (h.backlog > (r.params->>'readings')::bigint
              OR (h.backlog > 0 AND h.oldest_unsynced_age_s
                  + extract(epoch FROM %(now)s - h.reported_at)
                  > (r.params->>'oldest_minutes')::int * 60))""",
    "meter_unreachable": """
        SELECT r.id, r.tenant_id, 'meter:' || m.id, m.site_id, m.id, NULL::int,
               format('meter %%s of site %%s %%s since %%s%%s', m.external_id, s.name,
                      CASE WHEN h.state = 'no-values' THEN 'gives no values' ELSE 'unreachable' END,
                      _TS_(h.since), coalesce(': ' || h.last_error, '')),
               extract(epoch FROM %(now)s - h.since) / 60
        FROM alert_rules r
        JOIN meter_health h ON h.state IN ('unreachable', 'no-values')
             AND h.since <= %(now)s - make_interval(mins => (r.params->>'minutes')::int)
             AND (r.site_id IS NULL OR h.site_id = r.site_id)
             AND (r.meter_id IS NULL OR h.meter_id = r.meter_id)
        JOIN meters m ON m.id = h.meter_id AND m.active
        JOIN sites s ON s.id = h.site_id AND s.tenant_id = r.tenant_id AND s.active
        WHERE _RULES_""",
    "dropped_readings": f"""
        SELECT r.id, r.tenant_id, 'site:' || s.id, s.id, NULL::int, NULL::int,
               format('site %%s dropped %%s and quarantined %%s readings in all', s.name,
                      h.dropped_total, h.quarantined_total),
               (h.dropped_total + h.quarantined_total)::float8
        FROM alert_rules r {_SITES} JOIN site_health h ON h.site_id = s.id
        WHERE {_RULES} AND greatest(h.dropped_increased_at, h.quarantined_increased_at)
              > %(now)s - make_interval(mins => (r.params->>'window_minutes')::int)""",
    # hysteresis: a point already alerting stays so until it passes the clear threshold.
    # One pass over point_latest keeps only values past the loosest clear threshold of any
    # rule; only those few are joined to their point, meter, site and open alert.
    "value_threshold": """
        WITH r AS MATERIALIZED (
            SELECT r.*, (r.params->>'set')::float8 AS set_v, (r.params->>'clear')::float8 AS clear_v
            FROM alert_rules r WHERE _RULES_
        ), candidates AS MATERIALIZED (
            SELECT pl.point_id, pl.value FROM point_latest pl
            WHERE pl.value > (SELECT min(clear_v) FROM r WHERE r.params->>'op' IS DISTINCT FROM '<')
               OR pl.value < (SELECT max(clear_v) FROM r WHERE r.params->>'op' = '<')
        )
        SELECT r.id, r.tenant_id, 'point:' || p.id, s.id, m.id, p.id,
               format('%%s of meter %%s at site %%s is %%s %%s (threshold %%s %%s)', p.name,
                      m.external_id, s.name, round(pl.value::numeric, 3), p.unit,
                      r.params->>'op', r.params->>'set'),
               pl.value
        FROM candidates pl
        CROSS JOIN LATERAL (  -- per candidate: index lookups (OFFSET 0 keeps the planner from
            -- flattening it into a pass over every point)
            SELECT p.id, p.name, p.unit, p.meter_id FROM meter_points p
            WHERE p.id = pl.point_id AND p.active OFFSET 0) p
        JOIN r ON p.name = r.params->>'point'
        CROSS JOIN LATERAL (SELECT m.id, m.external_id, m.site_id FROM meters m
            WHERE m.id = p.meter_id AND m.active OFFSET 0) m
        CROSS JOIN LATERAL (SELECT s.id, s.name, s.tenant_id FROM sites s
            WHERE s.id = m.site_id AND s.active OFFSET 0) s
        LEFT JOIN alert_instances open ON open.rule_id = r.id AND open.key = 'point:' || p.id
             AND open.state <> 'resolved'
        WHERE s.tenant_id = r.tenant_id AND (r.site_id IS NULL OR s.id = r.site_id)
          AND (r.meter_id IS NULL OR m.id = r.meter_id) AND CASE
            WHEN r.params->>'op' = '<'
                THEN pl.value < CASE WHEN open.id IS NULL THEN r.set_v ELSE r.clear_v END
            ELSE pl.value > CASE WHEN open.id IS NULL THEN r.set_v ELSE r.clear_v END
            END""",
    # only while the site is online (else the heartbeat rule speaks) and its meter answers
    # (else the meter rule speaks); a point that never had a reading is not counted. One pass
    # over point_latest keeps the points older than the shortest rule's minutes.
    "no_data": """
        WITH r AS MATERIALIZED (
            SELECT r.*, (r.params->>'minutes')::int AS minutes FROM alert_rules r WHERE _RULES_
        ), stale AS MATERIALIZED (
            SELECT pl.point_id, pl.ts FROM point_latest pl
            WHERE pl.ts < %(now)s - make_interval(mins => (SELECT min(minutes) FROM r))
        )
        SELECT r.id, r.tenant_id, 'point:' || p.id, s.id, m.id, p.id,
               format('no reading of %%s of meter %%s at site %%s since %%s', p.name,
                      m.external_id, s.name, _TS_(pl.ts)),
               extract(epoch FROM %(now)s - pl.ts) / 60
        FROM stale pl
        CROSS JOIN LATERAL (  -- per stale point: index lookups, never a pass over every point
            SELECT p.id, p.name, p.meter_id FROM meter_points p
            WHERE p.id = pl.point_id AND p.active OFFSET 0) p
        CROSS JOIN LATERAL (SELECT m.id, m.external_id, m.site_id FROM meters m
            WHERE m.id = p.meter_id AND m.active OFFSET 0) m
        CROSS JOIN LATERAL (SELECT s.id, s.name, s.tenant_id FROM sites s
            WHERE s.id = m.site_id AND s.active
              AND s.last_heartbeat_at >= %(now)s - make_interval(secs => %(late_s)s) OFFSET 0) s
        JOIN r ON r.tenant_id = s.tenant_id AND pl.ts < %(now)s - make_interval(mins => r.minutes)
             AND (r.params->>'point' IS NULL OR p.name = r.params->>'point')
             AND (r.meter_id IS NULL OR m.id = r.meter_id)
             AND (r.site_id IS NULL OR s.id = r.site_id)
        WHERE NOT EXISTS (
            SELECT 1 FROM meter_health h
            WHERE h.meter_id = m.id AND h.state IN ('unreachable', 'no-values'))""",
    # the share of readings ingest refused, from the stored batch answers of the window
    "central_health": """
        WITH windows AS (
            SELECT DISTINCT (params->>'window_minutes')::int AS minutes FROM alert_rules
            WHERE kind = %(kind)s AND enabled
        ), stats AS (
            SELECT w.minutes, sum(jsonb_array_length(b.response->'rejected')) AS bad,
                   sum(jsonb_array_length(b.response->'rejected')
                       + (b.response->>'accepted')::bigint
                       + (b.response->>'duplicates')::bigint) AS total
            FROM windows w JOIN sync_batches b
                 ON b.received_at > %(now)s - make_interval(mins => w.minutes)
                 AND b.received_at <= %(now)s AND b.response ? 'accepted'
            GROUP BY w.minutes
        )
        SELECT r.id, r.tenant_id, 'central', NULL::int, NULL::int, NULL::int,
               format('central refused %%s%%%% of the readings sent in the last %%s min',
                      round(100.0 * st.bad / st.total, 1), st.minutes),
               (100.0 * st.bad / st.total)::float8
        FROM alert_rules r JOIN stats st ON st.minutes = (r.params->>'window_minutes')::int
        WHERE _RULES_ AND st.total > 0
              AND 100.0 * st.bad / st.total > (r.params->>'ingest_error_percent')::float8""",
}


def _expand(sql: str) -> str:
    sql = sql.replace("_RULES_", _RULES)
    return re.sub(r"_TS_\(([^()]*)\)", lambda m: _TS % m.group(1), sql)


QUERIES = {kind: _expand(sql) for kind, sql in QUERIES.items()}


def collect(
    conn: psycopg.Connection[Any],
    now: datetime,
    late_s: float,
    kinds: tuple[str, ...] = tuple(QUERIES),
    rule_id: int | None = None,
) -> list[Condition]:
    """Every condition that holds at ``now`` (of one rule only, with ``rule_id``)."""
    out: list[Condition] = []
    for kind in kinds:
        rows = conn.execute(
            QUERIES[kind], {"kind": kind, "now": now, "late_s": late_s, "rule": rule_id}
        ).fetchall()
        # the value is numeric (Decimal) from some queries and float8 from others
        out.extend(
            Condition(
                r[0], r[1], r[2], r[3], r[4], r[5], r[6], None if r[7] is None else float(r[7])
            )
            for r in rows
        )
    return out
