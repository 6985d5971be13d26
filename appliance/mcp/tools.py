"""The MCP tools of the appliance: thin adapters over the status API and the readings query.

Each tool calls the very function the local web UI calls (``appliance.service``,
``appliance.readings_query``); nothing here reads or writes the database on its own. A tool
either returns its structured answer or raises ``ToolError`` with a message an assistant can act
on (what to change, or which service to look at). Anything unforeseen is caught by the SDK,
logged with its traceback and returned as a generic tool error, so no call takes the server down.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Annotated, Any, TypeVar

import psycopg
import redis
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import ToolAnnotations
from pydantic import Field

from appliance import readings_query, service
from appliance.mcp import models
from appliance.settings import ApplianceSettings

logger = logging.getLogger(__name__)

T = TypeVar("T")

INSTRUCTIONS = """\
This is a MeterIT appliance: it polls the energy meters of one site over BACnet/IP, keeps every
reading in a local database and uploads them to the central server. Start with get_sync_status
and get_meter_status; meters are named by their external_id. Actions (trigger_sync,
trigger_meter_sync) queue a job for the appliance's worker and return at once: read the status
tools again to see the result. Times are ISO 8601 with an offset, and are returned in UTC."""

READ_ONLY = ToolAnnotations(read_only_hint=True, open_world_hint=False)
ACTION = ToolAnnotations(
    read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=False
)


@contextmanager
def _answerable(settings: ApplianceSettings) -> Iterator[None]:
    """Turn the failures an assistant can do something about into tool errors that say what."""
    try:
        yield
    except readings_query.ReadingsQueryError as err:
        raise ToolError(str(err)) from err
    except psycopg.OperationalError as err:
        reason = " ".join(str(err).split())
        logger.error("MCP tool cannot reach the edge database: %s", reason)
        raise ToolError(
            f"the appliance's database does not answer ({reason}); check that "
            "PostgreSQL is running on the appliance (systemctl status postgresql) and "
            "METERIT_DATABASE_URL"
        ) from err
    except psycopg.errors.UndefinedTable as err:
        logger.error("MCP tool finds no edge schema: %s", err.diag.message_primary)
        raise ToolError(
            f"the appliance's database has no MeterIT schema yet ({err.diag.message_primary}); "
            "run 'meterit-appliance migrate' (the meterit-migrate unit does it at boot)"
        ) from err
    except redis.RedisError as err:
        logger.error("MCP tool cannot queue a job, Redis at %s: %s", settings.redis_url, err)
        raise ToolError(
            f"could not queue the job: Redis does not answer ({err}); check redis-server on "
            "the appliance. No reading is lost: the worker's schedule runs it when Redis is back"
        ) from err


def _call(settings: ApplianceSettings, fn: Callable[[], T]) -> T:
    with _answerable(settings):
        return fn()


def _jsonable(data: Any) -> Any:
    """The status functions' data as JSON values (datetimes as UTC ISO 8601), as the UI gets it."""
    return service.jsonable(data)


def build_server(settings: ApplianceSettings) -> MCPServer:
    """The MCP server with every appliance tool bound to ``settings``."""
    server: MCPServer = MCPServer(
        "meterit-appliance",
        title="MeterIT appliance",
        instructions=INSTRUCTIONS,
        version=_version(),
        log_level=settings.log_level.upper(),  # type: ignore[arg-type]
    )

    @server.tool(annotations=READ_ONLY)
    def get_sync_status(
        recent_errors: Annotated[
            int,
            Field(
                description="how many recent upload errors to include (0-100)",
                json_schema_extra={"minimum": 0, "maximum": 100},
            ),
        ] = 10,
    ) -> models.SyncStatus:
        """How the upload of readings to central stands: backlog (readings not yet stored
        centrally) and the age of the oldest, last successful sync, connectivity to central,
        whether collection or upload is paused, dropped and quarantined counts, and the most
        recent upload errors. Read-only; answers even when the worker is stopped."""
        if not 0 <= recent_errors <= 100:
            raise ToolError(f"recent_errors {recent_errors} is out of range; give 0 to 100")
        data = _call(settings, lambda: service.get_sync_status(settings, recent_errors))
        return models.SyncStatus.model_validate(_jsonable(data))

    @server.tool(annotations=ACTION)
    def trigger_sync() -> models.JobQueued:
        """Upload the backlog of readings to central now instead of waiting for the schedule.
        Queues an upload job for the appliance's worker (meterit-worker) and returns its id at
        once; call get_sync_status afterwards to see the backlog shrink and last_sync_at move.
        Safe to call repeatedly: no reading is ever sent twice."""

        def run() -> models.JobQueued:
            job_id = service.sync_now(settings)
            current = service.get_sync_status(settings, recent_errors=0)
            message = f"upload queued as job {job_id}; get_sync_status shows its progress"
            if not current["enrolled"]:
                message += (
                    "; note: this appliance is not enrolled with central (no central URL or "
                    "API key), so the upload will send nothing"
                )
            if current["upload_paused"]:
                message += "; note: uploads are paused on this appliance, so it will send nothing"
            return models.JobQueued(job="upload", job_id=job_id, message=message)

        return _call(settings, run)

    @server.tool(annotations=ACTION)
    def stop_collection() -> models.CollectionState:
        """Stop polling the meters (e.g. while an electrician works on them). The collector
        stops within a second and polls nothing until start_collection; the setting survives
        restarts. Readings already stored still upload. Does nothing if already stopped."""
        changed = _call(settings, lambda: service.pause_collection(settings))
        message = (
            "collection stopped: no meter is polled until start_collection"
            if changed
            else "collection was already stopped"
        )
        return models.CollectionState(collection_paused=True, changed=changed, message=message)

    @server.tool(annotations=ACTION)
    def start_collection() -> models.CollectionState:
        """Resume polling the meters after stop_collection; the collector picks it up within a
        second. Does nothing if collection is already running."""
        changed = _call(settings, lambda: service.resume_collection(settings))
        message = (
            "collection started: meters are polled again from the next cycle"
            if changed
            else "collection was already running"
        )
        return models.CollectionState(collection_paused=False, changed=changed, message=message)

    @server.tool(annotations=READ_ONLY)
    def query_meter_readings(
        *,
        meter: Annotated[
            str, Field(description="the meter's external_id (get_meter_status lists them)")
        ],
        start: Annotated[
            datetime,
            Field(description="start of the range, inclusive; ISO 8601 with an offset"),
        ],
        end: Annotated[
            datetime,
            Field(
                description="end of the range, exclusive; ISO 8601 with an offset; at most "
                f"{readings_query.MAX_SPAN.days} days after start"
            ),
        ],
        point: Annotated[
            str | None,
            Field(description="one data point, e.g. energy_kwh; leave out for all of them"),
        ] = None,
        limit: Annotated[
            int,
            Field(
                description=f"readings per page, 1 to {readings_query.MAX_LIMIT}",
                json_schema_extra={"minimum": 1, "maximum": readings_query.MAX_LIMIT},
            ),
        ] = 100,
        cursor: Annotated[
            str | None,
            Field(description="next_cursor of the previous page, to get the next one"),
        ] = None,
    ) -> models.ReadingsPage:
        """Readings of one meter stored on this appliance, oldest first, one page at a time.
        The range is required and bounded (at most 31 days); synced readings are kept only
        for the retention window (7 days by default), unsynced ones until uploaded. When
        next_cursor is not null, call again with the same arguments and that cursor."""

        def run() -> readings_query.ReadingsPage:
            return readings_query.query_readings(
                settings, meter, point=point, start=start, end=end, limit=limit, cursor=cursor
            )

        return models.ReadingsPage.model_validate(_jsonable(_call(settings, run)))

    @server.tool(annotations=READ_ONLY)
    def get_meter_status(
        meter: Annotated[
            str | None,
            Field(description="one meter's external_id; leave out for every meter"),
        ] = None,
        include_inactive: Annotated[
            bool, Field(description="also list meters no longer configured")
        ] = False,
    ) -> models.MeterStatusList:
        """The collector's view of each meter: reachable, no-values (it answers but gives no
        value), unreachable or unknown, since when, the last reading and last error,
        per-point read errors, and how many of its readings are not yet stored centrally."""
        meters = _call(
            settings,
            lambda: service.get_meter_status(
                settings, include_inactive=include_inactive or meter is not None
            ),
        )
        if meter is not None:
            chosen = [m for m in meters if m["external_id"] == meter]
            if not chosen:
                known = ", ".join(m["external_id"] for m in meters[:20]) or "none"
                raise ToolError(
                    f"unknown meter {meter!r}; give a meter's external id, known meters: {known}"
                )
            meters = chosen
        return models.MeterStatusList.model_validate({"meters": _jsonable(meters)})

    @server.tool(annotations=ACTION)
    def trigger_meter_sync() -> models.JobQueued:
        """Pull this site's meter configuration from central now (central is the source of
        truth; the worker also does it hourly). Queues the job and returns at once; call
        get_meter_sync_status to see inserted / updated / deactivated meters. A pull already
        running makes the new one be refused, not run twice."""

        def run() -> models.JobQueued:
            job_id = service.meter_sync_now(settings)
            return models.JobQueued(
                job="meter_sync",
                job_id=job_id,
                message=f"meter sync queued as job {job_id}; get_meter_sync_status shows the "
                "result",
            )

        return _call(settings, run)

    @server.tool(annotations=READ_ONLY)
    def get_meter_sync_status() -> models.MeterSyncStatus:
        """The last meter-configuration pull from central (result, when, meters inserted,
        updated, deactivated, error), whether one is running now, how many meters are active,
        and which central site this appliance belongs to."""
        data = _call(settings, lambda: service.get_meter_sync_status(settings))
        return models.MeterSyncStatus.model_validate(_jsonable(data))

    return server


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("meterit")
    except PackageNotFoundError:
        return "0"
