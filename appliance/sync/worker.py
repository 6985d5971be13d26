"""``meterit-appliance worker``: the RQ worker plus RQ's cron for the periodic sync jobs.

Each job re-derives its work from the edge database (see ``common.rq_worker``), so a flushed or
restarted Redis, or a job killed halfway, loses nothing.
"""

from __future__ import annotations

from appliance.settings import ApplianceSettings, load_settings
from appliance.sync import jobs
from common import rq_worker
from common.failures import EDGE_DATABASE_DOWN

RETENTION_INTERVAL_S = 3600


def schedule(settings: ApplianceSettings) -> list[rq_worker.Periodic]:
    intervals = {
        "upload": settings.upload_interval_s,
        "heartbeat": settings.heartbeat_interval_s,
        "meter_sync": settings.meter_sync_interval_s,
        "retention": RETENTION_INTERVAL_S,
    }
    periodic = []
    for name, interval in intervals.items():
        func, timeout = jobs.JOBS[name]
        periodic.append(rq_worker.Periodic(name, func, interval, timeout))
    return periodic


def main(argv: list[str]) -> int:
    return rq_worker.main(
        argv,
        prog="meterit-appliance worker",
        description="Run the sync worker: uploads, meter config, heartbeat, retention.",
        load=load_settings,
        identifier="meterit-worker",
        probe_sql="SELECT 1 FROM appliance_state",
        queue=jobs.QUEUE,
        schedule=schedule,
        database=EDGE_DATABASE_DOWN,
    )
