"""The appliance's service layer: what the local web UI and the MCP server both call.

Read models (sync status, meter status, meter-sync status, quarantine) and actions (pause and
resume collection or upload, sync now, meter sync now), so the two faces always agree.

Reads come straight from the edge database (no worker needs to be running to answer them);
actions either flip a flag in ``appliance_state`` (the collector and the upload job watch it) or
queue a job for the worker. Every function takes the appliance settings and returns plain data:
dicts and lists of str, int, float, bool, None and ``datetime`` (``jsonable`` turns those into
ISO 8601 strings for JSON answers).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypedDict, TypeVar

import psycopg
from psycopg.rows import class_row

from appliance import backlog
from appliance.settings import ApplianceSettings
from appliance.sync import jobs
from common import db
from common.heartbeat import MeterState
from common.timestamps import format_ts

logger = logging.getLogger(__name__)

T = TypeVar("T")


class Connectivity(TypedDict):
    state: str  # unknown | online | offline
    since: datetime
    consecutive_failures: int
    last_success_at: datetime | None
    last_error: str | None
    last_error_at: datetime | None


class SyncError(TypedDict):
    at: datetime
    batch_id: str | None
    row_count: int
    error: str


class SyncedCounts(TypedDict):
    last_hour: int
    last_day: int


class SyncStatus(TypedDict):
    enrolled: bool
    central_url: str | None
    backlog: int  # unsynced readings on the edge
    in_flight: int  # readings in a batch that central has not answered yet
    oldest_unsynced_ts: datetime | None
    oldest_unsynced_age_s: float | None
    last_sync_at: datetime | None  # last batch central answered
    synced: SyncedCounts  # readings central confirmed in the last hour and day
    connectivity: Connectivity
    upload_paused: bool
    collection_paused: bool
    dropped_total: int
    quarantined: int
    recent_errors: list[SyncError]


class MeterSyncRun(TypedDict):
    id: int
    result: str  # running | ok | unchanged | error | refused
    started_at: datetime
    finished_at: datetime | None
    inserted: int
    updated: int
    deactivated: int
    error: str | None


class MeterSyncStatus(TypedDict):
    last_run: MeterSyncRun | None  # the last run that was not refused
    last_attempt: MeterSyncRun | None  # the last row, refused or not
    running: bool
    active_meters: int
    inactive_meters: int
    site_id: int | None
    site_name: str | None
    config_etag: str | None


class MeterStatus(TypedDict):
    meter_id: int
    external_id: str
    name: str
    address: str | None
    device_instance: int | None
    active: bool
    source: str
    points: int
    state: MeterState
    state_since: datetime | None
    last_reading_at: datetime | None
    last_error: str | None
    last_error_at: datetime | None
    consecutive_failures: int
    point_errors: dict[str, str]
    backlog: int


class QuarantinedReading(TypedDict):
    reading_id: int
    meter_id: int
    external_id: str | None
    point: str | None
    ts: datetime
    value: float
    reason: str
    batch_id: str | None
    quarantined_at: datetime


def _connect(settings: ApplianceSettings) -> psycopg.Connection[Any]:
    return db.connect(settings.database_url, application_name="meterit-status", autocommit=True)


@dataclass(frozen=True)
class _StateRow:
    upload_paused: bool
    collection_paused: bool
    dropped_total: int


@dataclass(frozen=True)
class _Counts:
    in_flight: int
    quarantined: int
    last_sync_at: datetime | None
    last_hour: int
    last_day: int


def get_sync_status(settings: ApplianceSettings, recent_errors: int = 10) -> SyncStatus:
    """Backlog, last sync, connectivity, pause flags, dropped and quarantined counts, and the
    most recent upload errors (newest first)."""
    with _connect(settings) as conn:
        # last sync and the synced counts from the upload log, as the readings themselves may
        # be pruned already; duplicates count, since central holds them too
        counts = _one(
            conn.cursor(row_factory=class_row(_Counts)).execute(
                """SELECT (SELECT coalesce(sum(row_count), 0) FROM upload_batches) AS in_flight,
                          (SELECT count(*) FROM quarantine) AS quarantined,
                          l.last_sync_at, l.last_hour, l.last_day
                   FROM (SELECT max(finished_at) AS last_sync_at,
                                coalesce(sum(accepted + duplicates) FILTER (
                                    WHERE finished_at > now() - interval '1 hour'), 0) AS last_hour,
                                coalesce(sum(accepted + duplicates) FILTER (
                                    WHERE finished_at > now() - interval '1 day'), 0) AS last_day
                         FROM sync_log WHERE error IS NULL) l"""
            )
        )
        queued = backlog.read(conn)
        link = _one(
            conn.cursor(row_factory=class_row(Connectivity)).execute(
                """SELECT connectivity AS state, connectivity_since AS since,
                          consecutive_failures, last_success_at, last_error, last_error_at
                   FROM appliance_state"""
            )
        )
        state = _one(
            conn.cursor(row_factory=class_row(_StateRow)).execute(
                "SELECT upload_paused, collection_paused, dropped_total FROM appliance_state"
            )
        )
        errors = (
            conn.cursor(row_factory=class_row(SyncError))
            .execute(
                """SELECT coalesce(finished_at, started_at) AS at, batch_id::text, row_count, error
                   FROM sync_log WHERE error IS NOT NULL ORDER BY id DESC LIMIT %s""",
                (recent_errors,),
            )
            .fetchall()
        )
    return {
        "enrolled": bool(settings.central_url and settings.api_key),
        "central_url": settings.central_url,
        "backlog": queued.count,
        "in_flight": int(counts.in_flight),
        "oldest_unsynced_ts": queued.oldest_ts,
        "oldest_unsynced_age_s": queued.oldest_age_s,
        "last_sync_at": counts.last_sync_at or link["last_success_at"],
        "synced": {"last_hour": int(counts.last_hour), "last_day": int(counts.last_day)},
        "connectivity": link,
        "upload_paused": state.upload_paused,
        "collection_paused": state.collection_paused,
        "dropped_total": state.dropped_total,
        "quarantined": counts.quarantined,
        "recent_errors": errors,
    }


_RUN_COLUMNS = "id, result, started_at, finished_at, inserted, updated, deactivated, error"


@dataclass(frozen=True)
class _MeterCounts:
    active_meters: int
    inactive_meters: int


@dataclass(frozen=True)
class _Site:
    site_id: int | None
    site_name: str | None
    config_etag: str | None


def get_meter_sync_status(settings: ApplianceSettings) -> MeterSyncStatus:
    """The last meter-config pull (and whether one is running), and how many meters are active."""
    with _connect(settings) as conn:
        runs = conn.cursor(row_factory=class_row(MeterSyncRun))
        last_run = runs.execute(
            f"SELECT {_RUN_COLUMNS} FROM meter_sync_log WHERE result <> 'refused'"
            " ORDER BY id DESC LIMIT 1"
        ).fetchone()
        last_attempt = runs.execute(
            f"SELECT {_RUN_COLUMNS} FROM meter_sync_log ORDER BY id DESC LIMIT 1"
        ).fetchone()
        meters = _one(
            conn.cursor(row_factory=class_row(_MeterCounts)).execute(
                "SELECT count(*) FILTER (WHERE active) AS active_meters,"
                " count(*) FILTER (WHERE NOT active) AS inactive_meters FROM meters"
            )
        )
        site = _one(
            conn.cursor(row_factory=class_row(_Site)).execute(
                "SELECT site_id, site_name, config_etag FROM appliance_state"
            )
        )
    return {
        "last_run": last_run,
        "last_attempt": last_attempt,
        "running": bool(last_run and last_run["result"] == "running"),
        "active_meters": meters.active_meters,
        "inactive_meters": meters.inactive_meters,
        "site_id": site.site_id,
        "site_name": site.site_name,
        "config_etag": site.config_etag,
    }


def get_meter_status(
    settings: ApplianceSettings,
    include_inactive: bool = False,
    conn: psycopg.Connection[Any] | None = None,
) -> list[MeterStatus]:
    """Every (active) meter with the collector's view of it and its unsynced backlog; on
    ``conn`` when given (the local UI's pooled connection, as the dashboard reads it on every
    refresh and a new connection costs more than the query), else on a connection of its own."""
    if conn is None:
        with _connect(settings) as own:
            return get_meter_status(settings, include_inactive, own)
    return (
        conn.cursor(row_factory=class_row(MeterStatus))
        .execute(
            """SELECT m.id AS meter_id, m.external_id, m.name, m.address, m.device_instance,
                      m.active, m.source,
                      (SELECT count(*) FROM meter_points p
                       WHERE p.meter_id = m.id AND p.active) AS points,
                      coalesce(s.state, 'unknown') AS state, s.state_since,
                      s.last_reading_at, s.last_error, s.last_error_at,
                      coalesce(s.consecutive_failures, 0) AS consecutive_failures,
                      coalesce(s.point_errors, '{}'::jsonb) AS point_errors,
                      coalesce(b.n, 0) AS backlog
               FROM meters m
               LEFT JOIN meter_status s ON s.meter_id = m.id
               LEFT JOIN (SELECT meter_id, count(*) AS n FROM upload_queue
                          GROUP BY meter_id) b ON b.meter_id = m.id
               WHERE m.active OR %s
               ORDER BY m.external_id""",
            (include_inactive,),
        )
        .fetchall()
    )


def get_quarantine(settings: ApplianceSettings, limit: int = 100) -> list[QuarantinedReading]:
    """Readings that will never be sent, newest first, with the reason (for technicians)."""
    with _connect(settings) as conn:
        return (
            conn.cursor(row_factory=class_row(QuarantinedReading))
            .execute(
                """SELECT q.reading_id, q.meter_id, m.external_id, p.name AS point, q.ts,
                          q.value, q.reason, q.batch_id::text, q.quarantined_at
                   FROM quarantine q
                   LEFT JOIN meters m ON m.id = q.meter_id
                   LEFT JOIN meter_points p ON p.id = q.point_id
                   ORDER BY q.id DESC LIMIT %s""",
                (limit,),
            )
            .fetchall()
        )


def _one(cursor: psycopg.Cursor[T]) -> T:
    """The single row a query of a one-row table or of aggregates always has."""
    row = cursor.fetchone()
    assert row is not None
    return row


def sync_now(settings: ApplianceSettings) -> str:
    """Queue an upload run for the worker at once; returns the job id.

    Safe to call any number of times: concurrent runs never send the same rows twice. While the
    upload is paused the run does nothing (resume it first).
    """
    job_id = jobs.enqueue(settings, "upload")
    logger.info("upload run requested (job %s)", job_id)
    return job_id


def meter_sync_now(settings: ApplianceSettings) -> str:
    """Queue a meter-config pull; a second one while one runs is refused and logged."""
    job_id = jobs.enqueue(settings, "meter_sync")
    logger.info("meter sync requested (job %s)", job_id)
    return job_id


def _set_flag(settings: ApplianceSettings, column: str, value: bool) -> bool:
    """Compare-and-set one pause flag; returns whether it changed."""
    assert column in ("collection_paused", "upload_paused")
    with _connect(settings) as conn:
        cur = conn.execute(
            f"UPDATE appliance_state SET {column} = %s, updated_at = now()"
            f" WHERE {column} IS DISTINCT FROM %s",
            (value, value),
        )
        changed = cur.rowcount == 1
    if changed:
        what = "collection" if column == "collection_paused" else "upload"
        if value:
            logger.warning("%s paused from the status API; resume it to go on", what)
        else:
            logger.info("%s resumed", what)
    return changed


def pause_collection(settings: ApplianceSettings) -> bool:
    """Stop polling meters (the collector sees it at once); returns whether it changed."""
    return _set_flag(settings, "collection_paused", True)


def resume_collection(settings: ApplianceSettings) -> bool:
    return _set_flag(settings, "collection_paused", False)


def pause_upload(settings: ApplianceSettings) -> bool:
    """Hold readings on the appliance (e.g. during central maintenance); collection goes on.

    A run in progress stops after its current batch."""
    return _set_flag(settings, "upload_paused", True)


def resume_upload(settings: ApplianceSettings) -> bool:
    """Resume uploading and queue a run so the held backlog drains without waiting for cron."""
    changed = _set_flag(settings, "upload_paused", False)
    if changed:
        try:
            sync_now(settings)
        except Exception as err:  # the cron run will drain it anyway
            logger.warning("upload resumed; could not queue a run now (%s), cron will", err)
    return changed


def jsonable(value: Any) -> Any:
    """The same data with datetimes as UTC ISO 8601 strings, for JSON answers."""
    if isinstance(value, datetime):
        return format_ts(value)
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value
