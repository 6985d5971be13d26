"""Central's reachability as seen by this appliance, kept in ``appliance_state``.

Logged once per change (online → offline and back), never once per try, so an outage of a day
is two lines in the journal, not thousands.
"""

from __future__ import annotations

import logging
from typing import Any

import psycopg

logger = logging.getLogger(__name__)


def commit_online(conn: psycopg.Connection[Any]) -> None:
    """Central answered: record it and commit (on the caller's connection)."""
    row = conn.execute(
        """
        UPDATE appliance_state s SET
            connectivity = 'online',
            connectivity_since = CASE WHEN old.connectivity = 'online'
                                      THEN old.connectivity_since ELSE now() END,
            consecutive_failures = 0, last_success_at = now(), updated_at = now()
        FROM (SELECT connectivity, connectivity_since, consecutive_failures
              FROM appliance_state FOR UPDATE) old
        RETURNING old.connectivity, old.consecutive_failures
        """
    ).fetchone()
    conn.commit()
    if row and row[0] != "online":
        if row[0] == "offline":
            logger.info("central reachable again after %d failed tries", row[1])
        else:
            logger.info("central reachable")


def commit_offline(conn: psycopg.Connection[Any], error: str) -> None:
    """Central could not be reached or failed: record why and commit."""
    row = conn.execute(
        """
        UPDATE appliance_state s SET
            connectivity = 'offline',
            connectivity_since = CASE WHEN old.connectivity = 'offline'
                                      THEN old.connectivity_since ELSE now() END,
            consecutive_failures = old.consecutive_failures + 1,
            last_error = %s, last_error_at = now(), updated_at = now()
        FROM (SELECT connectivity, connectivity_since, consecutive_failures, last_error
              FROM appliance_state FOR UPDATE) old
        RETURNING old.connectivity, old.last_error
        """,
        (error[:1000],),
    ).fetchone()
    conn.commit()
    if row and row[0] != "offline":
        logger.warning(
            "central unreachable, readings are kept and sent when it answers again: %s", error
        )
    elif row and row[1] != error[:1000]:
        logger.warning("central still unreachable, now: %s", error)
