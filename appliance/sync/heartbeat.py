"""Heartbeat to central: versions, backlog, meter statuses, dropped and quarantined readings,
pause flags.

Central marks a site offline when heartbeats stop, so this is sent even when the upload is
paused; its document is ``common.heartbeat``'s (``POST /sync/heartbeat``).
"""

from __future__ import annotations

import logging
import platform
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import psycopg

from appliance import backlog
from appliance.image_release import image_version
from appliance.settings import ApplianceSettings
from appliance.sync import connectivity
from appliance.sync.central import CentralClient, CentralError, NotEnrolled
from common import db
from common.heartbeat import MAX_METERS, Heartbeat, clip_error, parse_heartbeat
from common.timestamps import format_ts

logger = logging.getLogger(__name__)


def versions(
    conn: psycopg.Connection[Any], image_release_file: Path | None = None
) -> dict[str, str]:
    try:
        meterit = metadata.version("meterit")
    except metadata.PackageNotFoundError:  # running from a source tree
        meterit = "unknown"
    row = conn.execute("SHOW server_version").fetchone()
    found = {
        "meterit": meterit,
        "python": platform.python_version(),
        "postgresql": str(row[0]) if row else "unknown",
    }
    image = image_version(image_release_file) if image_release_file else None
    if image:  # only on a system built from the appliance image
        found["image"] = image
    return found


def build(conn: psycopg.Connection[Any], image_release_file: Path | None = None) -> Heartbeat:
    """The heartbeat, from the edge database alone, checked as central will check it: a
    document central would refuse fails here, naming the field, not every five minutes there."""
    queued = backlog.read(conn)
    # quarantined rows are kept until an operator looks at them (never pruned), so their count
    # is the appliance's total, as dropped_total is
    state = conn.execute(
        "SELECT dropped_total, collection_paused, upload_paused,"
        " (SELECT count(*) FROM quarantine) FROM appliance_state"
    ).fetchone()
    assert state is not None
    meters = [
        {
            "external_id": external_id,
            "state": status or "unknown",
            "since": format_ts(since) if since else None,
            "last_error": clip_error(last_error),
        }
        for external_id, status, since, last_error in conn.execute(
            """SELECT m.external_id, s.state, s.state_since, s.last_error
               FROM meters m LEFT JOIN meter_status s ON s.meter_id = m.id
               WHERE m.active ORDER BY m.external_id LIMIT %s""",
            (MAX_METERS,),
        )
    ]
    document = {
        "sent_at": format_ts(datetime.now(UTC)),
        "versions": versions(conn, image_release_file),
        "backlog": queued.count,
        "oldest_unsynced_age_s": queued.oldest_age_s,
        "dropped_readings": int(state[0]),
        "quarantined_readings": int(state[3]),
        "collection_paused": bool(state[1]),
        "upload_paused": bool(state[2]),
        "meters": meters,
    }
    return parse_heartbeat(document)


def send(settings: ApplianceSettings) -> dict[str, Any] | None:
    """Build and send one heartbeat; returns the document sent, None when it could not be sent."""
    # autocommit: no transaction held open while the heartbeat is posted
    with db.connect(
        settings.database_url, application_name="meterit-heartbeat", autocommit=True
    ) as conn:
        beat = build(conn, Path(settings.image_release_file))
        try:
            # one quick retry: the next heartbeat is minutes away, and a heartbeat stuck on a
            # bad link must not hold the worker (and the uploads queued behind it)
            with CentralClient(settings, retries=1, read_timeout_s=15) as client:
                client.post_heartbeat(beat)
        except NotEnrolled as err:
            logger.info("heartbeat skipped: %s", err)
            return None
        except CentralError as err:
            # said once per change by connectivity, not once every five minutes for a day
            logger.debug("heartbeat not delivered: %s", err)
            connectivity.commit_offline(conn, err)
            return None
        connectivity.commit_online(conn)
    logger.debug("heartbeat sent: backlog %d", beat.backlog)
    return beat.to_wire()
