"""Pruning what grows without bound and is only needed for a while: batch answers, heartbeats,
resolved alerts, sent e-mails.

A batch answer in ``sync_batches`` exists so a retried batch gets the same answer; once an
appliance can no longer be retrying it, the row is dead weight (a fleet of 1000 sites uploading
every minute adds 1.4 million a day). Pruning it cannot break exactly-once storage: a replay
after pruning is written again through ``ON CONFLICT DO NOTHING`` and every reading in it is
answered as a duplicate. Deletes go in chunks so no long lock or huge transaction builds up.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import psycopg

logger = logging.getLogger(__name__)

CHUNK = 10_000


def _prune(conn: psycopg.Connection[Any], table: str, column: str, older_than: timedelta) -> int:
    total = 0
    while True:
        with conn.transaction():
            cur = conn.execute(
                f"""DELETE FROM {table} WHERE ctid = ANY (ARRAY(
                        SELECT ctid FROM {table} WHERE {column} < now() - %s LIMIT %s))""",
                (older_than, CHUNK),
            )
        total += cur.rowcount
        if cur.rowcount < CHUNK:
            return total


def _prune_mail(conn: psycopg.Connection[Any], older_than: timedelta) -> int:
    """Old e-mails whose every delivery is done (sent or inside a digest); a queued or failed
    one is kept however old, since it still has to go out or be seen."""
    total = 0
    while True:
        with conn.transaction():
            cur = conn.execute(
                """DELETE FROM mail_messages WHERE id = ANY (ARRAY(
                       SELECT m.id FROM mail_messages m WHERE m.created_at < now() - %s
                         AND NOT EXISTS (SELECT 1 FROM mail_outbox o WHERE o.message_id = m.id
                                         AND o.status IN ('queued', 'failed'))
                       LIMIT %s))""",
                (older_than, CHUNK),
            )
        total += cur.rowcount
        if cur.rowcount < CHUNK:
            return total


def prune(
    conn: psycopg.Connection[Any],
    batch_answers: timedelta,
    heartbeats: timedelta,
    *,
    alerts: timedelta | None = None,
    mail: timedelta | None = None,
) -> dict[str, int]:
    """Also resolved alerts older than ``alerts`` and sent e-mails older than ``mail``."""
    done = {
        "sync_batches": _prune(conn, "sync_batches", "received_at", batch_answers),
        "heartbeats": _prune(conn, "heartbeats", "received_at", heartbeats),
    }
    if alerts is not None:  # open alerts have no resolved_at and are never pruned
        done["alert_instances"] = _prune(conn, "alert_instances", "resolved_at", alerts)
    if mail is not None:
        done["mail_messages"] = _prune_mail(conn, mail)
    logger.info(
        "pruned %d batch answer(s) and %d heartbeat(s)", done["sync_batches"], done["heartbeats"]
    )
    return done
