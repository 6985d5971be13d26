"""The appliance's Prometheus metrics, read from the edge database at each scrape.

The collector, the upload worker and the local UI are separate processes; what they did is
already in the edge database (meter status, the backlog, the ledger, quarantine, appliance state)
or added to it in the same transaction as the work (:mod:`appliance.edge_counters`). So the UI
that serves ``/metrics`` reads a handful of rows per scrape, keeps no state of its own, and every
gunicorn worker answers the same. Documented in docs/metrics.md: keep the two in step.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
    SummaryMetricFamily,
)
from prometheus_client.registry import Collector

from appliance import backlog, edge_counters

_METERS = """
SELECT m.external_id, coalesce(s.state, 'unknown'), coalesce(s.consecutive_failures, 0),
       coalesce(s.points_read_total, 0), coalesce(s.points_failed_total, 0)
FROM meters m LEFT JOIN meter_status s ON s.meter_id = m.id
WHERE m.active ORDER BY m.external_id
"""

# the backlog itself is appliance.backlog's, as the heartbeat and the Sync page count it
_STATE = """
SELECT (SELECT coalesce(sum(row_count), 0) FROM upload_batches),
       (SELECT count(*) FROM quarantine),
       a.dropped_total, a.collection_paused, a.upload_paused, a.connectivity = 'online',
       extract(epoch FROM a.last_success_at)::float8
FROM appliance_state a
"""

_COUNTERS = "SELECT name, value, extract(epoch FROM updated_at)::float8 FROM edge_counters"


@dataclass(frozen=True)
class Snapshot:
    meters: list[tuple[str, str, int, int, int]]
    backlog: backlog.Backlog
    state: tuple[Any, ...]
    counters: dict[str, tuple[float, float]]  # name -> (value, updated at, epoch seconds)

    @classmethod
    def read(cls, conn: psycopg.Connection[Any]) -> Snapshot:
        meters = conn.execute(_METERS).fetchall()
        queued = backlog.read(conn)
        state = conn.execute(_STATE).fetchone()
        assert state is not None  # appliance_state has its one row from the first migration
        counters = {name: (value, at) for name, value, at in conn.execute(_COUNTERS)}
        return cls(meters, queued, tuple(state), counters)

    def counter(self, name: str) -> float:
        return self.counters.get(name, (0.0, 0.0))[0]


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)


def _collector_metrics(snap: Snapshot) -> Iterator[Metric]:
    cycles = SummaryMetricFamily(
        "meterit_collector_cycle_seconds",
        "Poll cycles committed by the collector and the time they took (poll and write)",
        count_value=int(snap.counter(edge_counters.CYCLES)),
        sum_value=snap.counter(edge_counters.CYCLE_SECONDS),
    )
    yield cycles
    last = snap.counters.get(edge_counters.LAST_CYCLE_SECONDS)
    if last is not None:
        yield _gauge(
            "meterit_collector_last_cycle_seconds", "Time the last poll cycle took", last[0]
        )
        yield _gauge(
            "meterit_collector_last_cycle_timestamp_seconds",
            "When the last poll cycle was committed (Unix time)",
            last[1],
        )
    read = CounterMetricFamily(
        "meterit_collector_points_read", "Point values read and stored, per meter", labels=["meter"]
    )
    failed = CounterMetricFamily(
        "meterit_collector_points_failed",
        "Points asked for that gave no value (all of them when the meter did not answer), "
        "per meter",
        labels=["meter"],
    )
    up = GaugeMetricFamily(
        "meterit_meter_up", "1 when the meter answered with values last cycle", labels=["meter"]
    )
    failures = GaugeMetricFamily(
        "meterit_meter_consecutive_failures",
        "Poll cycles in a row the meter gave no values",
        labels=["meter"],
    )
    for external_id, state, consecutive, points_read, points_failed in snap.meters:
        read.add_metric([external_id], points_read)
        failed.add_metric([external_id], points_failed)
        up.add_metric([external_id], 1 if state == "reachable" else 0)
        failures.add_metric([external_id], consecutive)
    yield from (read, failed, up, failures)


def _sync_metrics(snap: Snapshot) -> Iterator[Metric]:
    (
        in_flight,
        quarantined,
        dropped,
        collection_paused,
        upload_paused,
        online,
        last_success,
    ) = snap.state
    yield _gauge(
        "meterit_backlog_readings", "Readings not yet stored by central", snap.backlog.count
    )
    yield _gauge(
        "meterit_backlog_oldest_age_seconds",
        "Age of the oldest reading not yet stored by central (0 when there is none)",
        snap.backlog.oldest_age_s or 0.0,
    )
    yield _gauge(
        "meterit_backlog_in_flight_readings", "Readings in upload batches being sent", in_flight
    )
    batches = CounterMetricFamily(
        "meterit_upload_batches",
        "Upload batch attempts: synced, refused (central named bad readings and wrote nothing) "
        "or failed (central unreachable or erring; the batch is sent again)",
        labels=["outcome"],
    )
    for outcome, name in edge_counters.BATCHES.items():
        batches.add_metric([outcome], snap.counter(name))
    yield batches
    readings = CounterMetricFamily(
        "meterit_upload_readings",
        "Readings central answered for: accepted, duplicate (it had them) or rejected",
        labels=["outcome"],
    )
    for outcome, name in edge_counters.READINGS.items():
        readings.add_metric([outcome], snap.counter(name))
    yield readings
    if last_success is not None:
        yield _gauge(
            "meterit_upload_last_success_timestamp_seconds",
            "When central last answered an upload (Unix time)",
            last_success,
        )
    yield _gauge("meterit_central_up", "1 when the last upload reached central", int(online))
    yield CounterMetricFamily(
        "meterit_dropped_readings",
        "Unsynced readings dropped by the buffer budget",
        value=dropped,
    )
    yield CounterMetricFamily(
        "meterit_quarantined_readings",
        "Readings quarantined (central rejected them, or the wire cannot carry them)",
        value=quarantined,
    )
    yield _gauge(
        "meterit_collection_paused", "1 while collection is paused", int(collection_paused)
    )
    yield _gauge("meterit_upload_paused", "1 while uploading is paused", int(upload_paused))


class _Read(Collector):
    def __init__(self, snap: Snapshot) -> None:
        self.snap = snap

    def collect(self) -> Iterator[Metric]:
        yield from _collector_metrics(self.snap)
        yield from _sync_metrics(self.snap)


def render(conn: psycopg.Connection[Any]) -> bytes:
    """The Prometheus text exposition of the appliance, as of now."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Read(Snapshot.read(conn)))
    return generate_latest(registry)
