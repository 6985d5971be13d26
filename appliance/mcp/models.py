"""The structured output of the MCP tools: what an assistant gets back, field by field.

These mirror the plain data of ``appliance.service`` and ``appliance.readings_query``; the
data itself always comes from there. They exist because the output schema is what an assistant
reads to understand an answer, so each field says what it means, and because pydantic cannot
publish the stdlib TypedDicts on Python 3.11. A field missing from the status data fails the
call loudly (and the tests), rather than drifting silently.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from common.heartbeat import MeterState


class Connectivity(BaseModel):
    state: str = Field(description="unknown, online or offline: whether central answers")
    since: datetime = Field(description="when the state last changed (UTC)")
    consecutive_failures: int = Field(description="failed contacts with central in a row")
    last_success_at: datetime | None = Field(description="last time central answered")
    last_error: str | None = Field(description="what went wrong the last time it failed")
    last_error_at: datetime | None


class SyncError(BaseModel):
    at: datetime
    batch_id: str | None = Field(description="the upload batch, to find in the logs (BATCH_ID=)")
    row_count: int
    error: str


class SyncedCounts(BaseModel):
    last_hour: int = Field(description="readings central confirmed in the last hour")
    last_day: int = Field(description="readings central confirmed in the last 24 hours")


class SyncStatus(BaseModel):
    """Where the appliance's readings stand on their way to central."""

    enrolled: bool = Field(description="whether a central URL and API key are configured")
    central_url: str | None
    backlog: int = Field(description="readings on the appliance not yet stored centrally")
    in_flight: int = Field(description="of those, readings in a batch central has not answered")
    oldest_unsynced_ts: datetime | None = Field(description="timestamp of the oldest unsynced one")
    oldest_unsynced_age_s: float | None = Field(description="its age in seconds")
    last_sync_at: datetime | None = Field(description="last time central answered a batch")
    synced: SyncedCounts
    connectivity: Connectivity
    upload_paused: bool = Field(description="uploads held on purpose; readings stay queued")
    collection_paused: bool = Field(description="meter polling stopped (stop_collection)")
    dropped_total: int = Field(description="readings dropped past the buffer budget, ever")
    quarantined: int = Field(description="readings central rejected as invalid; never resent")
    recent_errors: list[SyncError] = Field(description="latest upload failures, newest first")


class MeterSyncRun(BaseModel):
    id: int
    result: str = Field(description="running, ok, unchanged, error or refused")
    started_at: datetime
    finished_at: datetime | None
    inserted: int = Field(description="meters added by this run")
    updated: int = Field(description="meters changed by this run")
    deactivated: int = Field(description="meters no longer configured centrally")
    error: str | None


class MeterSyncStatus(BaseModel):
    """The meter configuration pulled from central (central is the source of truth)."""

    last_run: MeterSyncRun | None = Field(description="the last run that was not refused")
    last_attempt: MeterSyncRun | None = Field(description="the last run, refused or not")
    running: bool
    active_meters: int
    inactive_meters: int
    site_id: int | None = Field(description="the central site this appliance belongs to")
    site_name: str | None
    config_etag: str | None = Field(description="version of the configuration last applied")


class MeterStatus(BaseModel):
    meter_id: int
    external_id: str = Field(description="the meter's id; query_meter_readings takes this")
    name: str
    address: str | None = Field(description="BACnet/IP address, 'ip[:port]' or 'network:mac'")
    device_instance: int | None
    active: bool
    source: str = Field(description="'central' (meter sync) or 'file' (local meters file)")
    points: int = Field(description="active data points polled")
    state: MeterState = Field(
        description="unknown, reachable, no-values (answers but gives no value) or unreachable"
    )
    state_since: datetime | None
    last_reading_at: datetime | None
    last_error: str | None
    last_error_at: datetime | None
    consecutive_failures: int
    point_errors: dict[str, str] = Field(description="data point name -> its last read error")
    backlog: int = Field(description="this meter's readings not yet stored centrally")


class MeterStatusList(BaseModel):
    meters: list[MeterStatus]


class Reading(BaseModel):
    ts: datetime = Field(description="when the value was read (UTC)")
    point: str = Field(description="the data point, e.g. energy_kwh")
    unit: str
    value: float
    synced: bool = Field(description="already stored centrally")


class ReadingsPage(BaseModel):
    """One page of readings, oldest first."""

    meter: str
    point: str | None = Field(description="the data point asked for; null means all of them")
    start: datetime
    end: datetime
    items: list[Reading]
    next_cursor: str | None = Field(
        description="pass as cursor (same other arguments) for the next page; null on the last"
    )


class CollectionState(BaseModel):
    collection_paused: bool = Field(description="whether meter polling is now stopped")
    changed: bool = Field(description="false when it already was in that state")
    message: str


class JobQueued(BaseModel):
    job: str = Field(description="which job: upload or meter_sync")
    job_id: str = Field(description="the job's id in the worker's queue")
    message: str
