"""The latest heartbeat of each site as columns: ``site_health`` and ``meter_health``.

The heartbeat endpoint writes them with the heartbeat itself, so alert rules (backlog, meter
unreachable, dropped or quarantined readings) read a row per site and per meter in trouble
instead of parsing every site's heartbeat document on every evaluation. The counters of
dropped and quarantined readings are totals on the appliance; when one grows, the time is
kept (``*_increased_at``), which is what "any new ones" means to the rules.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from common.heartbeat import METER_PROBLEM_STATES, Heartbeat
from common.timestamps import format_ts


def store(conn: psycopg.Connection[Any], site_id: int, beat: Heartbeat, now: datetime) -> None:
    """Keep a checked heartbeat received at ``now``: its history row, the site's latest
    heartbeat, and the health columns below (the heartbeat endpoint's whole write)."""
    body = Jsonb(beat.to_wire())
    # the history row carries the site page's summary as columns (it never parses bodies)
    conn.execute(
        """INSERT INTO heartbeats (site_id, received_at, body, backlog, oldest_unsynced_age_s,
                  dropped_readings, meters, unreachable, version)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)""",
        (
            site_id,
            now,
            body,
            beat.backlog,
            beat.oldest_unsynced_age_s,
            beat.dropped_readings,
            len(beat.meters),
            sum(1 for m in beat.meters if m.state in METER_PROBLEM_STATES),
            beat.versions.get("meterit"),
        ),
    )
    conn.execute(
        "UPDATE sites SET last_heartbeat_at = %s, last_status = %s WHERE id = %s",
        (now, body, site_id),
    )
    record(conn, site_id, beat, now)


def record(conn: psycopg.Connection[Any], site_id: int, beat: Heartbeat, now: datetime) -> None:
    """Keep what the heartbeat says as columns, in the caller's transaction. An appliance
    older than the quarantine count does not send one: ``quarantined_total`` keeps its value."""
    conn.execute(
        """INSERT INTO site_health AS h (site_id, reported_at, backlog, oldest_unsynced_age_s,
                  dropped_total, quarantined_total)
           VALUES (%(site)s, %(now)s, %(backlog)s, %(age)s, %(dropped)s,
                   coalesce(%(quarantined)s, 0))
           ON CONFLICT (site_id) DO UPDATE SET
               reported_at = excluded.reported_at,
               backlog = excluded.backlog,
               oldest_unsynced_age_s = excluded.oldest_unsynced_age_s,
               dropped_increased_at = CASE WHEN excluded.dropped_total > h.dropped_total
                   THEN excluded.reported_at ELSE h.dropped_increased_at END,
               dropped_total = excluded.dropped_total,
               quarantined_increased_at = CASE
                   WHEN %(quarantined)s::bigint > h.quarantined_total
                   THEN excluded.reported_at ELSE h.quarantined_increased_at END,
               quarantined_total = coalesce(%(quarantined)s::bigint, h.quarantined_total)""",
        {
            "site": site_id,
            "now": now,
            "backlog": beat.backlog,
            "age": beat.oldest_unsynced_age_s,
            "dropped": beat.dropped_readings,
            "quarantined": beat.quarantined_readings,
        },
    )
    if not beat.meters:
        return
    meters = [
        {
            "external_id": m.external_id,
            "state": str(m.state),
            "since": format_ts(m.since) if m.since else None,
            "last_error": m.last_error,
        }
        for m in beat.meters
    ]
    # one statement for all meters; a state's "since" is the appliance's when it says one
    # (the rules count minutes from it), else the first heartbeat that reported the state
    conn.execute(
        """INSERT INTO meter_health AS h (meter_id, site_id, state, since, last_error, reported_at)
           SELECT m.id, %(site)s, x.state, coalesce(x.since, %(now)s), x.last_error, %(now)s
           FROM jsonb_to_recordset(%(meters)s)
                AS x (external_id text, state text, since timestamptz, last_error text)
           JOIN meters m ON m.site_id = %(site)s AND m.external_id = x.external_id
           ORDER BY m.id
           ON CONFLICT (meter_id) DO UPDATE SET
               since = CASE WHEN h.state = excluded.state AND excluded.since >= h.since
                            THEN h.since ELSE excluded.since END,
               state = excluded.state,
               last_error = excluded.last_error,
               reported_at = excluded.reported_at""",
        {"site": site_id, "now": now, "meters": Jsonb(meters)},
    )
