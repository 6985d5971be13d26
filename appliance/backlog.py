"""The upload backlog: how many readings are queued for central and how old the oldest is.

One definition for every face that shows it (the Sync page and MCP via ``service``, the
``/metrics`` scrape, the heartbeat, the commit budget), so they cannot drift apart: the
backlog is the rows of ``upload_queue`` (migration 0010), the oldest is the lowest queued id
(one index probe, ids follow insertion), and its age is measured by the database clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg


@dataclass(frozen=True)
class Backlog:
    count: int
    oldest_ts: datetime | None  # the oldest queued reading's timestamp; None when empty
    oldest_age_s: float | None  # now() - oldest_ts, never negative; None when empty


def count(conn: psycopg.Connection[Any]) -> int:
    """Readings queued for upload (in flight ones included)."""
    row = conn.execute("SELECT count(*) FROM upload_queue").fetchone()
    return int(row[0]) if row else 0


def read(conn: psycopg.Connection[Any]) -> Backlog:
    """The backlog's size and the oldest queued reading, with its age, in one statement."""
    row = conn.execute(
        """SELECT (SELECT count(*) FROM upload_queue), o.ts,
                  greatest(0.0, extract(epoch FROM now() - o.ts)::float8)
           FROM (SELECT NULL) one
           LEFT JOIN (SELECT r.ts FROM upload_queue q JOIN readings r ON r.id = q.id
                      ORDER BY q.id LIMIT 1) o ON true"""
    ).fetchone()
    assert row is not None  # aggregates always give a row
    return Backlog(count=int(row[0]), oldest_ts=row[1], oldest_age_s=row[2])
