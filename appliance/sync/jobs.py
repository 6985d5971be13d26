"""The RQ jobs of the appliance worker.

A job takes no objects, only (implicitly) the settings, which it loads itself from the
environment: whatever enqueued it — cron, the local UI, MCP, the CLI — the worker's own
configuration decides where it writes. Every job's state lives in the edge database, so a job
killed halfway is simply re-derived by the next run.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from redis import Redis
from rq import Queue

from appliance.settings import ApplianceSettings, load_settings

QUEUE = "meterit"

# how long a job may run before RQ kills it: the time budget plus a full retry sequence
UPLOAD_TIMEOUT_S = 900
META_TIMEOUT_S = 300


def upload() -> dict[str, Any]:
    from appliance.sync import retention
    from appliance.sync.pump import drain

    settings = load_settings()
    result = drain(settings)
    # the budget is checked right after a run, when the backlog is freshest
    dropped = retention.enforce_budget_for(settings)
    out = dataclasses.asdict(result)
    out["dropped"] = dropped
    out.pop("batch_ids", None)
    return out


def meter_sync() -> dict[str, Any]:
    from appliance.sync.meter_config import MeterSyncRefused, MeterSyncResult, sync_meters

    try:
        result = sync_meters(load_settings())
    except MeterSyncRefused as err:
        result = MeterSyncResult("refused", error=str(err))
    return dataclasses.asdict(result)


def heartbeat() -> dict[str, Any] | None:
    from appliance.sync import heartbeat as hb

    return hb.send(load_settings())


def retention() -> dict[str, Any]:
    from appliance.sync import retention as ret

    return dataclasses.asdict(ret.run(load_settings()))


JOBS = {
    "upload": (upload, UPLOAD_TIMEOUT_S),
    "meter_sync": (meter_sync, META_TIMEOUT_S),
    "heartbeat": (heartbeat, META_TIMEOUT_S),
    "retention": (retention, META_TIMEOUT_S),
}


def enqueue(settings: ApplianceSettings, name: str) -> str:
    """Queue one job by name for the worker; returns the RQ job id."""
    func, timeout = JOBS[name]
    with Redis.from_url(settings.redis_url, socket_connect_timeout=5) as redis:
        job = Queue(QUEUE, connection=redis).enqueue(func, job_timeout=timeout, result_ttl=3600)
        return str(job.id)
