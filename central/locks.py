"""Every advisory lock central's jobs take, named once here (as rq names its keys in one module).

A session lock (``held``) makes a job exclusive across all workers on all hosts: a second run
started while the first holds it skips instead of doing the work twice, and a worker that dies
releases it with its connection, so the next run is never blocked by a dead one.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg

NAMESPACE = 0x4D43  # "MC": MeterIT central; the second key picks the lock

MAIL_DRAIN = (NAMESPACE, 1)
ALERT_EVALUATION = (NAMESPACE, 2)


@contextmanager
def held(conn: psycopg.Connection[Any], lock: tuple[int, int]) -> Iterator[bool]:
    """Try ``lock`` for this session; yields whether it was taken (released on exit if so)."""
    row = conn.execute("SELECT pg_try_advisory_lock(%s, %s)", lock).fetchone()
    conn.commit()
    got = bool(row and row[0])
    try:
        yield got
    finally:
        if got and not conn.closed:
            conn.rollback()
            conn.execute("SELECT pg_advisory_unlock(%s, %s)", lock)
            conn.commit()
