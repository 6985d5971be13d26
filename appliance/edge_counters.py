"""Counters the appliance's units keep in the edge database for ``/metrics``
(:mod:`appliance.metrics` reads them): every name is declared here, once.

A unit adds to its counters in the statement or transaction that does the counted work, so a
count is lost or doubled only with the work itself. Totals only grow (Prometheus counters);
``LAST_CYCLE_SECONDS`` is the one value that is replaced, not added to.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# the collector, once per committed poll cycle
CYCLES = "collector_cycles_total"
CYCLE_SECONDS = "collector_cycle_seconds_total"
LAST_CYCLE_SECONDS = "collector_last_cycle_seconds"
# the upload, once per batch attempt (ledger.log_attempt)
BATCHES = {  # outcome -> counter
    "synced": "upload_batches_synced_total",
    "refused": "upload_batches_refused_total",  # central named bad items, wrote nothing
    "failed": "upload_batches_failed_total",  # central unreachable, or an error answer
}
READINGS = {
    "accepted": "upload_readings_accepted_total",
    "duplicate": "upload_readings_duplicate_total",
    "rejected": "upload_readings_rejected_total",
}
REPLACED = (LAST_CYCLE_SECONDS,)

RECORD = """
INSERT INTO edge_counters AS c (name, value)
SELECT name, value FROM unnest(%(names)s::text[], %(values)s::float8[]) AS u(name, value)
ON CONFLICT (name) DO UPDATE SET
    value = CASE WHEN c.name = ANY(%(replaced)s::text[]) THEN EXCLUDED.value
                 ELSE c.value + EXCLUDED.value END,
    updated_at = now()
"""


def record_params(values: Mapping[str, float]) -> dict[str, Any]:
    """The parameters of :data:`RECORD` (one statement for any number of counters); the
    callers run it with their own connection, sync or async."""
    return {
        "names": list(values),
        "values": [float(v) for v in values.values()],
        "replaced": list(REPLACED),
    }


def cycle(seconds: float) -> dict[str, float]:
    return {CYCLES: 1, CYCLE_SECONDS: seconds, LAST_CYCLE_SECONDS: seconds}


def upload_attempt(
    accepted: int, duplicates: int, rejected: int, error: str | None
) -> dict[str, float]:
    """A batch attempt as the ledger logs it: settled (no error), refused (central named bad
    items in a 4xx and wrote nothing) or failed."""
    outcome = "synced" if error is None else "refused" if rejected else "failed"
    return {
        BATCHES[outcome]: 1,
        READINGS["accepted"]: accepted,
        READINGS["duplicate"]: duplicates,
        READINGS["rejected"]: rejected,
    }
