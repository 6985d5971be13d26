"""``meterit-appliance sync-now`` and ``meter-sync``: run one sync in the foreground.

For installers and technicians at a shell (and for tests): the same code the worker runs, its
result on stdout, a non-zero exit when it did not work. ``--queue`` hands it to the worker instead.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys

from appliance.settings import ApplianceSettings, load_settings
from appliance.sync import jobs
from common.config import ConfigError
from common.logs import setup_logging

EX_TEMPFAIL = 75


def _settings(name: str) -> ApplianceSettings | None:
    try:
        settings = load_settings()
    except ConfigError as err:
        sys.stderr.write(f"meterit-appliance: configuration error: {err}\n")
        return None
    setup_logging(f"meterit-{name}", settings.log_level)
    return settings


def sync_now(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="meterit-appliance sync-now",
        description="Upload the unsynced backlog to central now, until empty or the time budget.",
    )
    parser.add_argument("--queue", action="store_true", help="queue the run for the worker")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--time-budget", type=float, default=None, help="seconds")
    args = parser.parse_args(argv)
    settings = _settings("sync-now")
    if settings is None:
        return 78
    if args.queue:
        sys.stdout.write(f"queued upload job {jobs.enqueue(settings, 'upload')}\n")
        return 0
    from appliance.sync.pump import drain

    result = drain(settings, batch_size=args.batch_size, time_budget_s=args.time_budget)
    out = dataclasses.asdict(result)
    out.pop("batch_ids")
    sys.stdout.write(json.dumps(out) + "\n")
    if result.stopped == "error":
        sys.stderr.write(f"upload stopped: {result.error}\n")
        return 1
    return 0


def meter_sync(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="meterit-appliance meter-sync",
        description="Pull this site's meter configuration from central and apply it now.",
    )
    parser.add_argument("--queue", action="store_true", help="queue the run for the worker")
    args = parser.parse_args(argv)
    settings = _settings("meter-sync")
    if settings is None:
        return 78
    if args.queue:
        sys.stdout.write(f"queued meter sync job {jobs.enqueue(settings, 'meter_sync')}\n")
        return 0
    from appliance.sync.meter_config import MeterSyncRefused, sync_meters

    try:
        result = sync_meters(settings)
    except MeterSyncRefused as err:
        sys.stderr.write(f"meter sync refused: {err}\n")
        return EX_TEMPFAIL
    sys.stdout.write(json.dumps(dataclasses.asdict(result)) + "\n")
    if result.result == "error":
        sys.stderr.write(f"meter sync failed: {result.error}\n")
        return 1
    return 0
