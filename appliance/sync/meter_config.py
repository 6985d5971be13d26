"""Meter configuration sync: central is the source of truth for a site's meters.

``GET /sync/config`` (with the last ``ETag``, so an unchanged config costs a 304) and then, in one
transaction, insert new meters, update changed ones and deactivate the ones central no longer
lists; meters are never deleted, so their readings keep a meter. Every run is a row in
``meter_sync_log`` with its counts. A PostgreSQL advisory lock refuses a second run while one
is going, whichever process starts it (cron, the UI, the CLI).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import psycopg

from appliance import locks
from appliance.meter_store import replace_meters
from appliance.meters_file import MetersFileError, validate_meters
from appliance.settings import ApplianceSettings
from appliance.sync import connectivity
from appliance.sync.central import CentralClient, CentralError, NotEnrolled
from common import db, wire
from common.meter_spec import MeterSpec

logger = logging.getLogger(__name__)


class MeterSyncRefused(Exception):
    """Another meter sync holds the lock; the message says since when."""


class MeterConfigError(ValueError):
    """Central's config answer does not have the documented shape."""


@dataclass
class MeterSyncResult:
    result: str  # ok | unchanged | error | refused
    inserted: int = 0
    updated: int = 0
    deactivated: int = 0
    log_id: int | None = None
    error: str | None = None


def parse_config(body: Any) -> list[MeterSpec]:
    """The meters of a ``/sync/config`` answer: the same shape, and the same checks, as a local
    meters file. MeterConfigError lists every bad field."""
    meters = body.get("meters") if isinstance(body, dict) else body
    try:
        return validate_meters(meters, source="central's /sync/config")
    except MetersFileError as err:
        raise MeterConfigError(str(err)) from err


def _finish(conn: psycopg.Connection[Any], log_id: int, result: MeterSyncResult) -> MeterSyncResult:
    conn.execute(
        "UPDATE meter_sync_log SET finished_at = now(), result = %s, inserted = %s, updated = %s,"
        " deactivated = %s, error = %s WHERE id = %s",
        (result.result, result.inserted, result.updated, result.deactivated, result.error, log_id),
    )
    result.log_id = log_id
    return result


def _commit_refusal(conn: psycopg.Connection[Any]) -> MeterSyncRefused:
    row = conn.execute(
        "SELECT started_at FROM meter_sync_log WHERE result = 'running' ORDER BY id DESC LIMIT 1"
    ).fetchone()
    since = f" since {row[0]:%Y-%m-%d %H:%M:%S %Z}" if row else ""
    message = (
        f"another meter sync is running{since}; this one was not started — "
        "wait for it to finish, then look at the meter sync status"
    )
    conn.execute(
        "INSERT INTO meter_sync_log (finished_at, result, error) VALUES (now(), 'refused', %s)",
        (message,),
    )
    conn.commit()
    logger.warning("meter sync refused: %s", message)
    return MeterSyncRefused(message)


def sync_meters(settings: ApplianceSettings) -> MeterSyncResult:
    """One meter-config pull; raises MeterSyncRefused when another run holds the lock."""
    with db.connect(settings.database_url, application_name="meterit-meter-sync") as conn:
        if not locks.try_meter_list(conn, session=True):
            raise _commit_refusal(conn)
        try:
            # a run killed halfway left its row 'running'; we hold the lock, so it is dead
            conn.execute(
                "UPDATE meter_sync_log SET result = 'error', finished_at = now(),"
                " error = 'interrupted (the process running it stopped)'"
                " WHERE result = 'running'"
            )
            row = conn.execute(
                "INSERT INTO meter_sync_log (result) VALUES ('running') RETURNING id"
            ).fetchone()
            assert row is not None
            log_id = int(row[0])
            etag_row = conn.execute("SELECT config_etag FROM appliance_state").fetchone()
            conn.commit()
            return _commit_run(conn, settings, log_id, etag_row[0] if etag_row else None)
        finally:
            conn.rollback()
            locks.unlock_meter_list(conn)
            conn.commit()


def _commit_run(
    conn: psycopg.Connection[Any], settings: ApplianceSettings, log_id: int, etag: str | None
) -> MeterSyncResult:
    try:
        with CentralClient(settings, retries=2, read_timeout_s=30) as client:
            resp = client.get_config(etag)
        connectivity.commit_online(conn)
        if resp.status == 304:
            result = _finish(conn, log_id, MeterSyncResult("unchanged"))
            conn.commit()
            logger.info("meter config unchanged (ETag %s)", etag)
            return result
        meters = parse_config(resp.body)
        inserted, updated, deactivated = replace_meters(conn, meters)
        site = wire.config_site(resp.body)
        conn.execute(
            "UPDATE appliance_state SET config_etag = %s, site_id = COALESCE(%s, site_id),"
            " site_name = COALESCE(%s, site_name), updated_at = now()",
            (resp.etag, site.site_id, site.site_name),
        )
        result = _finish(conn, log_id, MeterSyncResult("ok", inserted, updated, deactivated))
        conn.commit()
    except (CentralError, NotEnrolled, MeterConfigError, psycopg.Error) as err:
        conn.rollback()
        if isinstance(err, CentralError):
            connectivity.commit_offline(conn, err)
        result = _finish(conn, log_id, MeterSyncResult("error", error=str(err)))
        conn.commit()
        # central failing is said once per change by connectivity, not once an hour for a day
        logger.log(
            logging.DEBUG if isinstance(err, CentralError) else logging.ERROR,
            "meter sync failed, local meters unchanged: %s",
            err,
        )
        return result
    logger.info(
        "meter config applied: %d inserted, %d updated, %d deactivated, %d active",
        inserted,
        updated,
        deactivated,
        len(meters),
    )
    return result
