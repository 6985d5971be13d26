"""The upload batch ledger: which unsynced readings are in which batch, and how a batch ends.

Unsynced readings are the ids in ``upload_queue`` (kept by triggers on ``readings``, migration
0010). A batch is claimed in one transaction: a row in ``upload_batches`` records the ids of the
readings it holds, and the claiming session takes the batch's advisory lock (``appliance.locks``).
Claims take turns, and a claim skips every id inside a live batch's id range, so no reading is
ever in two batches. If the claimer dies — SIGKILL, power cut, OOM — PostgreSQL drops its session
and with it the lock, so the next run finds the batch orphaned and sends the very same rows again
under the same idempotency key; central answers a replay from its cache, or at worst
``ON CONFLICT DO NOTHING`` counts them as duplicates. Rows leave the queue only after central's
answer, in one transaction, so a crash at any point either leaves the batch to be re-sent or has
it fully settled.

Readings the wire cannot carry (NaN, names too long, an unknown point) are quarantined locally
before a batch is formed, and readings central rejects are quarantined with its reason: a poison
reading never blocks the backlog behind it.

Commits: a function here that takes a connection never commits it, except the units of work
named ``commit_*``. Those commit, then release the batch's lock — in that order, so no other run
can take the batch over before its new state is durable.
"""

from __future__ import annotations

import functools
import logging
import math
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

import psycopg
from psycopg import sql

from appliance import edge_counters, locks
from common import wire
from common.logs import fields

logger = logging.getLogger(__name__)


class BatchRow(NamedTuple):
    """One reading in a batch, with the names the wire carries (None: no longer configured),
    made only where a reading is judged or quarantined (``Batch.row``), not for every claimed
    row."""

    id: int
    meter_id: int
    point_id: int
    ts: datetime
    value: float
    meter: str | None
    point: str | None
    unit: str | None


Raw = tuple[int, int, int, datetime, float]  # (id, meter_id, point_id, ts, value) as claimed


@dataclass
class Names:
    """The meters' external ids and the points' (name, unit) of a batch, by id: looked up once
    per batch, not carried on every row."""

    meters: dict[int, str]
    points: dict[int, tuple[str, str | None]]

    def row(self, raw: Raw) -> BatchRow:
        rid, mid, pid, ts, value = raw
        return BatchRow(
            rid, mid, pid, ts, value, self.meters.get(mid), *self.points.get(pid, _UNNAMED)
        )


_UNNAMED: tuple[None, None] = (None, None)


@dataclass
class Batch:
    """A claimed batch: its readings as the claim fetched them, in id order, and their names.
    No object per reading on the claiming thread: for a 50,000-reading batch, a named tuple
    per row cost that thread about 0.15 s, a sixth of its time in a 1 M-reading drain; the
    wire items are built on the POSTing thread (``items``) and ``rows`` only when asked for."""

    id: uuid.UUID
    raw: list[Raw]
    names: Names
    resent: bool = False

    def __len__(self) -> int:
        return len(self.raw)

    @property
    def last_id(self) -> int:
        return self.raw[-1][0]

    def row(self, index: int) -> BatchRow:
        return self.names.row(self.raw[index])

    @functools.cached_property
    def rows(self) -> list[BatchRow]:
        return [self.names.row(r) for r in self.raw]

    def items(self) -> list[dict[str, Any]]:
        """The batch's readings as the wire carries them (``ts`` as the datetime: the encoder
        writes it, see ``wire.encode_batch``)."""
        meter, point = self.names.meters.get, self.names.points.get
        out: list[dict[str, Any]] = []
        append = out.append
        for _, mid, pid, ts, value in self.raw:
            name, unit = point(pid, _UNNAMED)
            append(
                {"meter": meter(mid), "point": name, "ts": ts, "value": value, "unit": unit or ""}
            )
        return out


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

_ROW_SELECT = "SELECT r.id, r.meter_id, r.point_id, r.ts, r.value FROM readings r"

# The live batches ahead of the cursor are skipped by explicit id ranges ({skip}), read after
# taking the claim turn: a NOT EXISTS against upload_batches was an anti-join evaluated for
# every queued row, 0.06-0.25 s of a 50,000-row claim even with no batch ahead (EXPLAIN
# ANALYZE, 1,000,000 queued), and a drain's own batches are all behind its cursor. The rows
# come back in the CTE's order and are sorted by the caller (already sorted: one pass), not
# by a second sort here.
_CLAIM = """
    WITH claimed AS (
        SELECT r.id, r.meter_id, r.point_id, r.ts, r.value
        FROM upload_queue q JOIN readings r ON r.id = q.id
        -- the bound on r.id too: without it the planner merge-joins readings from its first id,
        -- every settled reading again at each claim
        WHERE q.id > %(after)s AND r.id > %(after)s{skip}
        ORDER BY q.id LIMIT %(size)s),
    lease AS (
        INSERT INTO upload_batches (id, first_id, last_id, row_count, reading_ids)
        SELECT %(batch)s, min(id), max(id), count(*), array_agg(id)
        FROM claimed HAVING count(*) > 0)
    SELECT id, meter_id, point_id, ts, value FROM claimed
"""


def _claim_query(conn: psycopg.Connection[Any], after_id: int) -> sql.Composed:
    """The claim, skipping the id range of every live batch that reaches past ``after_id`` (an
    orphan being re-sent, another run's batch). Read under the claim turn: no batch can be
    created between this read and the claim, as only claims create them."""
    live = conn.execute(
        "SELECT first_id, last_id FROM upload_batches WHERE last_id > %s ORDER BY first_id",
        (after_id,),
    ).fetchall()
    skip = sql.SQL("").join(
        sql.SQL(" AND q.id NOT BETWEEN {} AND {}").format(sql.Literal(first), sql.Literal(last))
        for first, last in live
    )
    return sql.SQL(_CLAIM).format(skip=skip)


def unsendable(row: BatchRow) -> str | None:
    """Why the wire cannot carry this reading (the same checks as ``wire.parse_reading``)."""
    if row.meter is None or row.point is None:
        return "its meter or data point is not configured on this appliance"
    if not math.isfinite(row.value):
        return f"value {row.value!r} is not a finite number; the wire carries finite numbers only"
    if not row.meter.strip() or len(row.meter) > wire.MAX_NAME_LENGTH:
        return f"meter external id {row.meter!r} is empty or longer than {wire.MAX_NAME_LENGTH}"
    if not row.point.strip() or len(row.point) > wire.MAX_NAME_LENGTH:
        return f"point name {row.point!r} is empty or longer than {wire.MAX_NAME_LENGTH}"
    if len(row.unit or "") > wire.MAX_UNIT_LENGTH:
        return f"unit {row.unit!r} is longer than {wire.MAX_UNIT_LENGTH} characters"
    return None


def quarantine(
    conn: psycopg.Connection[Any],
    rows: list[tuple[BatchRow, str]],
    batch_id: uuid.UUID | None = None,
) -> None:
    """Move readings to quarantine with their reason."""
    if not rows:
        return
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO quarantine (reading_id, meter_id, point_id, ts, value, reason, batch_id)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s)",
            [(r.id, r.meter_id, r.point_id, r.ts, r.value, reason, batch_id) for r, reason in rows],
        )
    conn.execute("DELETE FROM readings WHERE id = ANY(%s)", ([r.id for r, _ in rows],))
    for r, reason in rows:
        logger.warning(
            "reading %d (point %d at %s) quarantined: %s",
            r.id,
            r.point_id,
            r.ts.isoformat(),
            reason,
            extra=fields(meter_id=r.meter_id, batch_id=str(batch_id) if batch_id else None),
        )


def log_attempt(
    conn: psycopg.Connection[Any],
    batch: Batch,
    started: datetime,
    *,
    accepted: int = 0,
    duplicates: int = 0,
    rejected: int = 0,
    error: str | None = None,
) -> None:
    conn.execute(
        "INSERT INTO sync_log (batch_id, started_at, finished_at, row_count, accepted,"
        " duplicates, rejected, error) VALUES (%s, %s, now(), %s, %s, %s, %s, %s)",
        (batch.id, started, len(batch), accepted, duplicates, rejected, error),
    )
    # counted for /metrics in the same transaction as the attempt's outcome
    counts = edge_counters.upload_attempt(accepted, duplicates, rejected, error)
    conn.execute(edge_counters.RECORD, edge_counters.record_params(counts))


def release(conn: psycopg.Connection[Any], batch: Batch) -> None:
    """Give the batch's remaining rows back to the backlog (central never stored this batch)."""
    conn.execute("DELETE FROM upload_batches WHERE id = %s", (batch.id,))


def _batch_rows(conn: psycopg.Connection[Any], query: Any, params: Any) -> tuple[list[Raw], Names]:
    """The rows of a claim or re-read in id order (fetched at once in binary: no text to parse
    per value), and the names of their meters and points, read in the same transaction. Not
    joined in the claim's statement: for 50,000 readings of a few hundred points, naming each
    row in SQL and carrying the names back cost the drain's claiming thread more than these two
    lookups of the distinct ids."""
    with conn.cursor(binary=True) as cur:
        raw: list[Raw] = cur.execute(query, params).fetchall()
        if not raw:
            return [], Names({}, {})
        raw.sort()  # by id (unique): one pass over rows that come back in order
        meters = dict(
            cur.execute(
                "SELECT id, external_id FROM meters WHERE id = ANY(%s)",
                (list({r[1] for r in raw}),),
            ).fetchall()
        )
        points = {
            pid: (name, unit)
            for pid, name, unit in cur.execute(
                "SELECT id, name, unit FROM meter_points WHERE id = ANY(%s)",
                (list({r[2] for r in raw}),),
            ).fetchall()
        }
    return raw, Names(meters, points)


def _split_sendable(raw: list[Raw], names: Names) -> tuple[list[Raw], list[tuple[BatchRow, str]]]:
    """(the rows the wire can carry, the others as named rows with why not). The names are
    checked once per (meter, point) and only values row by row: ``unsendable`` for each of
    50,000 rows cost the claiming thread about 0.1 s a batch."""
    pairs = {(r[1], r[2]) for r in raw}
    names_ok = all(unsendable(names.row((0, m, p, _EPOCH, 0.0))) is None for m, p in pairs)
    isfinite = math.isfinite
    if names_ok and all(isfinite(r[4]) for r in raw):
        return raw, []
    good: list[Raw] = []
    bad: list[tuple[BatchRow, str]] = []
    for r in raw:
        reason = unsendable(names.row(r))
        if reason is None:
            good.append(r)
        else:
            bad.append((names.row(r), reason))
    return good, bad


def _commit_and_unlock(conn: psycopg.Connection[Any], batch_id: uuid.UUID) -> None:
    conn.commit()
    locks.unlock_batch(conn, batch_id)
    conn.commit()


def _commit_orphan_claim(conn: psycopg.Connection[Any]) -> Batch | None:
    """A batch whose claimer is gone (its advisory lock is free), to re-send as it was."""
    # pg_locks first: a session's own advisory locks are re-entrant, so trying the lock alone
    # would let a run "reclaim" the batch it is sending itself
    candidates = conn.execute(
        """SELECT b.id, b.created_at FROM upload_batches b
           WHERE NOT EXISTS (
               SELECT 1 FROM pg_locks l
               WHERE l.locktype = 'advisory' AND l.database = (
                         SELECT oid FROM pg_database WHERE datname = current_database())
                 AND l.classid = %s AND l.objid = hashtext(b.id::text)::oid AND l.objsubid = 2)
           ORDER BY b.first_id""",
        (locks.UPLOAD_BATCH,),
    ).fetchall()
    conn.commit()
    for batch_id, created_at in candidates:
        if not locks.lock_batch(conn, batch_id, wait=False):
            continue  # another run holds it: in flight
        # its ids as the ledger holds them now (none if it was settled meanwhile)
        raw, names = _batch_rows(
            conn,
            _ROW_SELECT + " JOIN upload_queue q ON q.id = r.id WHERE r.id = ANY(("
            "SELECT reading_ids FROM upload_batches WHERE id = %s)::bigint[]) ORDER BY r.id",
            (batch_id,),
        )
        if not raw:
            conn.execute("DELETE FROM upload_batches WHERE id = %s", (batch_id,))
            _commit_and_unlock(conn, batch_id)
            continue
        last = conn.execute(
            "SELECT error FROM sync_log WHERE batch_id = %s AND started_at >= %s"
            " ORDER BY started_at DESC LIMIT 1",
            (batch_id, created_at),
        ).fetchone()
        conn.commit()
        # a batch central did not take was said once by connectivity; one a run left behind
        # when it died was never said
        failed = last is not None and last[0] is not None
        logger.log(
            logging.DEBUG if failed else logging.INFO,
            "re-sending batch of %d readings left by %s",
            len(raw),
            "a failed run" if failed else "an interrupted run",
            extra=fields(batch_id=str(batch_id)),
        )
        return Batch(batch_id, raw, names, resent=True)
    return None


def _commit_new_claim(
    conn: psycopg.Connection[Any], batch_size: int, after_id: int
) -> tuple[Batch | None, int]:
    """Claim the oldest free unsynced rows in one statement (pick, mark, record the batch)."""
    quarantined = 0
    while True:
        batch_id = uuid.uuid4()
        # a session lock taken inside the claiming transaction: no moment where the batch
        # exists unlocked, and it outlives the commit until we settle the batch or die
        locks.lock_batch(conn, batch_id, wait=True)
        locks.take_claim_turn(conn)
        params = {"after": after_id, "size": batch_size, "batch": batch_id}
        raw, names = _batch_rows(conn, _claim_query(conn, after_id), params)
        if not raw:
            _commit_and_unlock(conn, batch_id)
            return None, quarantined
        good, bad = _split_sendable(raw, names)
        if bad:
            quarantine(conn, bad)
            quarantined += len(bad)
            if good:
                conn.execute(
                    "UPDATE upload_batches SET row_count = %s, reading_ids = %s WHERE id = %s",
                    (len(good), [r[0] for r in good], batch_id),
                )
            else:
                conn.execute("DELETE FROM upload_batches WHERE id = %s", (batch_id,))
        if not good:
            _commit_and_unlock(conn, batch_id)
            after_id = raw[-1][0]
            continue
        conn.commit()
        return Batch(batch_id, good, names), quarantined


def commit_claim(
    conn: psycopg.Connection[Any], batch_size: int, after_id: int = 0, orphans: bool = True
) -> tuple[Batch | None, int]:
    """The next batch to send — an orphaned one first (unless ``orphans`` is false), else the
    oldest free unsynced rows — and how many unsendable readings were quarantined on the way.
    The batch is committed to the ledger and locked by this session until it is settled."""
    orphan = _commit_orphan_claim(conn) if orphans else None
    if orphan is not None:
        return orphan, 0
    return _commit_new_claim(conn, batch_size, after_id)


def commit_settlement(
    conn: psycopg.Connection[Any],
    batch: Batch,
    started: datetime,
    *,
    accepted: int,
    duplicates: int,
    rejected: dict[int, str],
) -> None:
    """Central has the batch: quarantine what it rejected, take the rest out of the upload queue
    (readings themselves are not written: see migration 0010), one transaction."""
    quarantine(conn, [(batch.row(i), reason) for i, reason in sorted(rejected.items())], batch.id)
    # the batch's ids from its ledger row, not sent back as a parameter: psycopg dumping a list
    # of 50,000 ints took longer than the delete
    conn.execute(
        "DELETE FROM upload_queue WHERE id = ANY((SELECT reading_ids FROM upload_batches"
        " WHERE id = %s)::bigint[])",
        (batch.id,),
    )
    conn.execute("DELETE FROM upload_batches WHERE id = %s", (batch.id,))
    log_attempt(
        conn, batch, started, accepted=accepted, duplicates=duplicates, rejected=len(rejected)
    )
    _commit_and_unlock(conn, batch.id)


def commit_refusal(
    conn: psycopg.Connection[Any],
    batch: Batch,
    started: datetime,
    refused: dict[int, str],
    error: str,
) -> None:
    """Central refused the whole batch naming these items (a 4xx writes nothing): quarantine
    them and hand the others back to the backlog for a fresh batch."""
    quarantine(conn, [(batch.row(i), reason) for i, reason in refused.items()], batch.id)
    release(conn, batch)
    log_attempt(conn, batch, started, rejected=len(refused), error=error)
    _commit_and_unlock(conn, batch.id)


def commit_failure(
    conn: psycopg.Connection[Any], batch: Batch, started: datetime, error: str
) -> None:
    """Central did not take the batch: log why and let it go; the next run re-sends it as an
    orphan, under the same idempotency key."""
    log_attempt(conn, batch, started, error=error)
    _commit_and_unlock(conn, batch.id)
