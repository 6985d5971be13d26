"""Prometheus metrics of the central server.

Under gunicorn each worker is a process, so the counters use prometheus_client's multiprocess
mode: ``central/gunicorn.conf.py`` points ``PROMETHEUS_MULTIPROC_DIR`` at a fresh folder before
any worker starts, and ``/metrics`` sums the workers' files. Without that variable (a single
process, e.g. ``flask run``) the default registry is used.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

INGEST_READINGS = Counter(
    "meterit_ingest_readings_total",
    "Readings received by the sync API, by outcome",
    ["outcome"],  # accepted | duplicate | rejected
)
INGEST_BATCHES = Counter(
    "meterit_ingest_batches_total",
    "Readings batches received, by outcome",
    ["outcome"],  # written | replayed | refused
)
INGEST_SECONDS = Histogram(
    "meterit_ingest_batch_seconds",
    "Time to validate and write one readings batch",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
REQUEST_SECONDS = Histogram(
    "meterit_http_request_seconds",
    "HTTP request latency by endpoint and status class",
    ["endpoint", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
HEARTBEATS = Counter("meterit_heartbeats_total", "Heartbeats stored")


def render() -> tuple[bytes, str]:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST
