"""Central's reachability as seen by this appliance, kept in ``appliance_state``.

Logged once per change of failure mode (``appliance.sync.failures``: online → unreachable →
key refused → online …), never once per try, so an outage of a day is two lines in the journal,
not thousands. The mode is read back from the stored error, which starts with it, so the worker,
``sync-now`` and a restarted worker agree on what was already said.
"""

from __future__ import annotations

import logging
from typing import Any

import psycopg

from appliance.sync.central import CentralError
from appliance.sync.failures import mode_of
from common.logs import fields

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
        FROM (SELECT connectivity, connectivity_since, consecutive_failures, last_error
              FROM appliance_state FOR UPDATE) old
        RETURNING old.connectivity, old.consecutive_failures, old.last_error
        """
    ).fetchone()
    conn.commit()
    if not row or row[0] == "online":
        return
    if row[0] == "unknown":
        logger.info("central reachable")
        return
    mode = mode_of(row[2])
    if mode is None:  # an error stored before the modes
        logger.info("central reachable again after %d failed tries", row[1])
    else:
        logger.info("%s after %d failed tries", mode.back, row[1], extra=fields(failure=mode.name))


def commit_offline(conn: psycopg.Connection[Any], err: CentralError) -> None:
    """Central could not be reached, refused or failed: record why and commit."""
    error = str(err)[:1000]
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
        (error,),
    ).fetchone()
    conn.commit()
    was = mode_of(row[1]) if row and row[0] == "offline" else None
    if was is not err.mode:
        logger.log(err.mode.level, "%s", error, extra=fields(failure=err.mode.name))
