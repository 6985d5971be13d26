"""Every PostgreSQL advisory lock of the edge database, with what it guards (one place, as rq
names every Redis key in one module).

Advisory locks are keyed by two integers. The first says what kind of thing is locked, so a
per-batch key (a hash) can never collide with a singleton's:

- ``UPLOAD_BATCH`` + ``hashtext(batch id)``: *session* lock held by the run sending that upload
  batch, from its claim to its settlement. Free lock = orphaned batch (its run died), which the
  next run re-sends under the same idempotency key. ``appliance.sync.ledger`` finds orphans by
  this class in ``pg_locks``.
- ``CLAIM_TURN``: *transaction* lock. Upload claims and the buffer budget's drops take turns on
  it, so two claims never both see the same readings as free and a drop never deletes a
  reading a claim is taking.
- ``METER_LIST``: the one writer of the local meter list (the meter-config pull, session lock for
  its whole run; ``meters load``, transaction lock), so two writers never interleave.
"""

from __future__ import annotations

from typing import Any

import psycopg

UPLOAD_BATCH = 0x4D55  # class of the per-batch keys
_SINGLETONS = 0x4D56  # class of the one-of-a-kind locks below
CLAIM_TURN = (_SINGLETONS, 1)
METER_LIST = (_SINGLETONS, 2)


def lock_batch(conn: psycopg.Connection[Any], batch_id: object, *, wait: bool) -> bool:
    """Take the batch's session lock; without ``wait``, False when another session holds it."""
    fn = "pg_advisory_lock" if wait else "pg_try_advisory_lock"
    row = conn.execute(f"SELECT {fn}(%s, hashtext(%s))::text", (UPLOAD_BATCH, str(batch_id)))
    got = row.fetchone()
    return wait or (got is not None and got[0] == "true")


def unlock_batch(conn: psycopg.Connection[Any], batch_id: object) -> None:
    conn.execute("SELECT pg_advisory_unlock(%s, hashtext(%s))", (UPLOAD_BATCH, str(batch_id)))


def take_claim_turn(conn: psycopg.Connection[Any]) -> None:
    """Wait for other claims and budget drops (released when this transaction ends)."""
    conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", CLAIM_TURN)


def try_meter_list(conn: psycopg.Connection[Any], *, session: bool) -> bool:
    """Whether this connection now holds the meter-list lock (for the session, or until the
    transaction ends); False when another writer holds it."""
    fn = "pg_try_advisory_lock" if session else "pg_try_advisory_xact_lock"
    got = conn.execute(f"SELECT {fn}(%s, %s)", METER_LIST).fetchone()
    return bool(got and got[0])


def unlock_meter_list(conn: psycopg.Connection[Any]) -> None:
    conn.execute("SELECT pg_advisory_unlock(%s, %s)", METER_LIST)
