"""Store-and-forward upload: drain the unsynced backlog to central, oldest first, exactly once.

A batch is claimed in one transaction: a row in ``upload_batches`` records the ids of the
readings it holds (the lease), and the claiming session takes an advisory lock on it. Claims
take turns (a transaction advisory lock), and a claim skips every id inside a live batch's id
range, so no reading is ever in two batches. If the claimer
dies — SIGKILL, power cut, OOM — PostgreSQL drops its session and with it the lock, so the next
run finds the batch orphaned and sends the very same rows again under the same idempotency key;
central answers a replay from its cache, or at worst ``ON CONFLICT DO NOTHING`` counts them as
duplicates. Rows are marked synced only after central's answer, in one transaction, so a crash
at any point either leaves the batch to be re-sent or has it fully settled.

Readings the wire cannot carry (NaN, names too long, an unknown point) are quarantined locally
before a batch is formed, and readings central rejects are quarantined with its reason: a poison
reading never blocks the backlog behind it.
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg

from appliance.settings import ApplianceSettings
from appliance.sync import connectivity
from appliance.sync.central import CentralClient, CentralError, NotEnrolled, Response
from common import db, wire
from common.logs import fields

logger = logging.getLogger(__name__)

# advisory lock namespace (first key) for upload batches; the second key hashes the batch id
BATCH_LOCK_CLASS = 0x4D55
LEASE_S = 600  # informational: liveness comes from the advisory lock, not the clock
CHECK_EVERY_S = 5.0  # how often a run looks for orphaned batches and the pause flag
IN_FLIGHT = 2  # batches POSTed at once by one run (each held by the run's lease lock)


@dataclass
class _Row:
    id: int
    meter_id: int
    point_id: int
    ts: datetime
    value: float
    meter: str | None
    point: str | None
    unit: str | None


@dataclass
class Batch:
    id: uuid.UUID
    rows: list[_Row]
    resent: bool = False

    @property
    def last_id(self) -> int:
        return self.rows[-1].id


@dataclass
class DrainResult:
    """What one upload run did; ``stopped`` says why it ended."""

    stopped: str = "empty"  # empty | budget | paused | not-enrolled | error
    batches: int = 0
    sent: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    quarantined_locally: int = 0
    seconds: float = 0.0
    error: str | None = None
    batch_ids: list[str] = field(default_factory=list)


_ROW_SELECT = """
    SELECT r.id, r.meter_id, r.point_id, r.ts, r.value, m.external_id, p.name, p.unit
    FROM readings r
    LEFT JOIN meters m ON m.id = r.meter_id
    LEFT JOIN meter_points p ON p.id = r.point_id
"""


def _unsendable(row: _Row) -> str | None:
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


def _items(rows: list[_Row]) -> list[dict[str, Any]]:
    return [
        wire.reading_item(r.meter or "", r.point or "", r.ts, r.value, r.unit or "") for r in rows
    ]


def _lock(conn: psycopg.Connection[Any], batch_id: uuid.UUID, wait: bool) -> bool:
    fn = "pg_advisory_lock" if wait else "pg_try_advisory_lock"
    row = conn.execute(
        f"SELECT {fn}(%s, hashtext(%s))::text", (BATCH_LOCK_CLASS, str(batch_id))
    ).fetchone()
    return wait or (row is not None and row[0] == "true")


def _unlock(conn: psycopg.Connection[Any], batch_id: uuid.UUID) -> None:
    conn.execute("SELECT pg_advisory_unlock(%s, hashtext(%s))", (BATCH_LOCK_CLASS, str(batch_id)))
    conn.commit()


def quarantine(
    conn: psycopg.Connection[Any],
    rows: list[tuple[_Row, str]],
    batch_id: uuid.UUID | None = None,
) -> None:
    """Move readings to quarantine with their reason (in the caller's transaction)."""
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


def _reclaim_orphan(conn: psycopg.Connection[Any]) -> Batch | None:
    """A batch whose claimer is gone (its advisory lock is free): re-send it as it was."""
    # pg_locks first: a session's own advisory locks are re-entrant, so trying the lock alone
    # would let a run "reclaim" the batch it is sending itself
    candidates = conn.execute(
        """SELECT b.id, b.reading_ids FROM upload_batches b
           WHERE NOT EXISTS (
               SELECT 1 FROM pg_locks l
               WHERE l.locktype = 'advisory' AND l.database = (
                         SELECT oid FROM pg_database WHERE datname = current_database())
                 AND l.classid = %s AND l.objid = hashtext(b.id::text)::oid AND l.objsubid = 2)
           ORDER BY b.first_id""",
        (BATCH_LOCK_CLASS,),
    ).fetchall()
    conn.commit()
    for batch_id, reading_ids in candidates:
        if not _lock(conn, batch_id, wait=False):
            continue  # another run holds it: in flight
        still = conn.execute("SELECT 1 FROM upload_batches WHERE id = %s", (batch_id,)).fetchone()
        rows = [
            _Row(*r)
            for r in conn.execute(
                _ROW_SELECT + " WHERE r.id = ANY(%s) AND r.synced_at IS NULL ORDER BY r.id",
                (reading_ids,),
            )
        ]
        if still is None or not rows:
            conn.execute("DELETE FROM upload_batches WHERE id = %s", (batch_id,))
            conn.commit()
            _unlock(conn, batch_id)
            continue
        conn.execute(
            "UPDATE upload_batches SET leased_until = now() + make_interval(secs => %s)"
            " WHERE id = %s",
            (LEASE_S, batch_id),
        )
        conn.commit()
        logger.info(
            "re-sending batch of %d readings left by an interrupted run",
            len(rows),
            extra=fields(batch_id=str(batch_id)),
        )
        return Batch(batch_id, rows, resent=True)
    return None


# claims (and the buffer budget's drops) take turns on this lock, held to the end of the
# transaction: two claims never both see the same readings as free
CLAIM_LOCK = (BATCH_LOCK_CLASS, 0)

_CLAIM = """
    WITH claimed AS (
        SELECT r.id, r.meter_id, r.point_id, r.ts, r.value
        FROM readings r
        WHERE r.synced_at IS NULL AND r.id > %(after)s
          AND NOT EXISTS (SELECT 1 FROM upload_batches b
                          WHERE r.id BETWEEN b.first_id AND b.last_id)
        ORDER BY r.id LIMIT %(size)s),
    lease AS (
        INSERT INTO upload_batches (id, first_id, last_id, row_count, leased_until, reading_ids)
        SELECT %(batch)s, min(id), max(id), count(*), now() + make_interval(secs => %(lease)s),
               array_agg(id ORDER BY id)
        FROM claimed HAVING count(*) > 0)
    SELECT c.id, c.meter_id, c.point_id, c.ts, c.value, m.external_id, p.name, p.unit
    FROM claimed c
    LEFT JOIN meters m ON m.id = c.meter_id
    LEFT JOIN meter_points p ON p.id = c.point_id
    ORDER BY c.id
"""


def take_claim_turn(conn: psycopg.Connection[Any]) -> None:
    """Wait for other claims and budget drops to commit (released at this transaction's end)."""
    conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", CLAIM_LOCK)


def _claim_new(
    conn: psycopg.Connection[Any], batch_size: int, after_id: int
) -> tuple[Batch | None, int]:
    """Lease the oldest free unsynced rows in one statement (pick, mark, record the batch)."""
    quarantined = 0
    while True:
        batch_id = uuid.uuid4()
        # a session lock taken inside the claiming transaction: no moment where the batch
        # exists unlocked, and it outlives the commit until we settle the batch or die
        _lock(conn, batch_id, wait=True)
        take_claim_turn(conn)
        params = {"after": after_id, "size": batch_size, "batch": batch_id, "lease": LEASE_S}
        rows = [_Row(*r) for r in conn.execute(_CLAIM, params)]
        if not rows:
            conn.commit()
            _unlock(conn, batch_id)
            return None, quarantined
        bad: list[tuple[_Row, str]] = []
        good: list[_Row] = []
        for r in rows:
            reason = _unsendable(r)
            if reason is None:
                good.append(r)
            else:
                bad.append((r, reason))
        if bad:
            quarantine(conn, bad)
            quarantined += len(bad)
            if good:
                conn.execute(
                    "UPDATE upload_batches SET row_count = %s, reading_ids = %s WHERE id = %s",
                    (len(good), [r.id for r in good], batch_id),
                )
            else:
                conn.execute("DELETE FROM upload_batches WHERE id = %s", (batch_id,))
        conn.commit()
        if not good:
            _unlock(conn, batch_id)
            after_id = rows[-1].id
            continue
        return Batch(batch_id, good), quarantined


def claim_batch(
    conn: psycopg.Connection[Any], batch_size: int, after_id: int = 0, orphans: bool = True
) -> tuple[Batch | None, int]:
    """The next batch to send — an orphaned one first (unless ``orphans`` is false), else the
    oldest free unsynced rows — and how many unsendable readings were quarantined on the way."""
    orphan = _reclaim_orphan(conn) if orphans else None
    if orphan is not None:
        return orphan, 0
    return _claim_new(conn, batch_size, after_id)


def _parse_answer(body: Any, sent: int) -> tuple[int, int, dict[int, str]]:
    if not isinstance(body, dict):
        raise ValueError(f"answer is not an object: {body!r:.200}")
    accepted, duplicates = body.get("accepted"), body.get("duplicates")
    if not isinstance(accepted, int) or not isinstance(duplicates, int):
        raise ValueError(f"answer lacks accepted/duplicates counts: {body!r:.200}")
    rejected: dict[int, str] = {}
    for item in body.get("rejected") or []:
        index = item.get("index") if isinstance(item, dict) else None
        if not isinstance(index, int) or not 0 <= index < sent:
            raise ValueError(f"answer names an item outside the batch: {item!r:.200}")
        rejected[index] = str(item.get("reason") or "rejected by central")
    if accepted + duplicates + len(rejected) != sent:
        raise ValueError(
            f"answer counts {accepted}+{duplicates}+{len(rejected)} do not add up to {sent} sent"
        )
    return accepted, duplicates, rejected


def _log_attempt(
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
        (batch.id, started, len(batch.rows), accepted, duplicates, rejected, error),
    )


def settle(
    conn: psycopg.Connection[Any],
    batch: Batch,
    started: datetime,
    *,
    accepted: int,
    duplicates: int,
    rejected: dict[int, str],
) -> None:
    """Central has the batch: quarantine what it rejected, mark the rest synced, one transaction."""
    quarantine(conn, [(batch.rows[i], reason) for i, reason in sorted(rejected.items())], batch.id)
    conn.execute(
        "UPDATE readings SET synced_at = now() WHERE id = ANY(%s) AND synced_at IS NULL",
        ([r.id for r in batch.rows],),
    )
    conn.execute("DELETE FROM upload_batches WHERE id = %s", (batch.id,))
    _log_attempt(
        conn, batch, started, accepted=accepted, duplicates=duplicates, rejected=len(rejected)
    )
    conn.commit()
    _unlock(conn, batch.id)


def _unlease(conn: psycopg.Connection[Any], batch: Batch) -> None:
    """Give the batch's rows back to the backlog (central never stored this batch)."""
    conn.execute("DELETE FROM upload_batches WHERE id = %s", (batch.id,))


def _refused_items(err: CentralError, sent: int) -> dict[int, str]:
    """Items a 4xx answer names by index (``details: [{"index": i, "reason": ...}]``)."""
    out: dict[int, str] = {}
    details = err.body.get("details") if isinstance(err.body, dict) else None
    for item in details or []:
        if isinstance(item, dict) and isinstance(item.get("index"), int):
            index = item["index"]
            if 0 <= index < sent:
                out[index] = str(item.get("reason") or item.get("error") or item)
    return out


@dataclass
class Settled:
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    requeued: bool = False  # some rows went back to the backlog, behind the run's cursor


def post(client: CentralClient, batch: Batch) -> Response:
    """POST one batch (gzip JSON) under its id as the idempotency key."""
    return client.post_readings(wire.encode_batch(_items(batch.rows)), str(batch.id))


def conclude(
    conn: psycopg.Connection[Any],
    batch: Batch,
    started: datetime,
    outcome: Response | BaseException,
) -> Settled:
    """Settle a batch from central's answer, or record why it was not taken.

    Raises CentralError when central did not take the batch; the batch then stays leased to
    nobody (the lock is released) and the next run re-sends it with the same key.
    """
    bid = str(batch.id)
    try:
        if isinstance(outcome, BaseException):
            raise outcome
        accepted, duplicates, rejected = _parse_answer(outcome.body, len(batch.rows))
    except (CentralError, ValueError) as err:
        conn.rollback()
        refused = _refused_items(err, len(batch.rows)) if isinstance(err, CentralError) else {}
        if refused and isinstance(err, CentralError) and err.status in (400, 422):
            # central wrote nothing (a 4xx is all-or-nothing): drop the named items into
            # quarantine and hand the others back to the backlog for a fresh batch
            quarantine(conn, [(batch.rows[i], reason) for i, reason in refused.items()], batch.id)
            _unlease(conn, batch)
            _log_attempt(conn, batch, started, rejected=len(refused), error=str(err))
            conn.commit()
            _unlock(conn, batch.id)
            return Settled(rejected=len(refused), requeued=True)
        _log_attempt(conn, batch, started, error=str(err))
        conn.commit()
        _unlock(conn, batch.id)
        if isinstance(err, ValueError):
            raise CentralError(f"central's answer to batch {bid} is not understood: {err}") from err
        raise
    settle(conn, batch, started, accepted=accepted, duplicates=duplicates, rejected=rejected)
    logger.debug(
        "batch of %d readings synced: %d accepted, %d duplicates, %d rejected",
        len(batch.rows),
        accepted,
        duplicates,
        len(rejected),
        extra=fields(batch_id=bid),
    )
    return Settled(accepted, duplicates, len(rejected))


def send_batch(conn: psycopg.Connection[Any], client: CentralClient, batch: Batch) -> Settled:
    """POST one batch and settle it (``drain`` does the same, overlapped with the next claim)."""
    started = datetime.now(UTC)
    try:
        outcome: Response | BaseException = post(client, batch)
    except CentralError as err:
        outcome = err
    return conclude(conn, batch, started, outcome)


@dataclass
class _InFlight:
    batch: Batch
    started: datetime
    future: Future[Response]
    client: CentralClient

    def outcome(self) -> Response | BaseException:
        try:
            return self.future.result()
        except Exception as err:
            return err


def _add(result: DrainResult, batch: Batch, settled: Settled) -> None:
    result.batches += 1
    result.sent += len(batch.rows)
    result.accepted += settled.accepted
    result.duplicates += settled.duplicates
    result.rejected += settled.rejected
    result.batch_ids.append(str(batch.id))


def upload_paused(conn: psycopg.Connection[Any]) -> bool:
    row = conn.execute("SELECT upload_paused FROM appliance_state").fetchone()
    conn.commit()
    return bool(row and row[0])


def drain(
    settings: ApplianceSettings,
    *,
    batch_size: int | None = None,
    time_budget_s: float | None = None,
) -> DrainResult:
    """One upload run: send batches until the backlog is empty or the time budget is spent."""
    result = DrainResult()
    t0 = time.monotonic()
    deadline = t0 + (time_budget_s if time_budget_s is not None else settings.upload_time_budget_s)
    size = batch_size or settings.upload_batch_size
    try:
        clients = [CentralClient(settings) for _ in range(IN_FLIGHT)]
    except NotEnrolled as err:
        logger.info("upload skipped: %s", err)
        result.stopped, result.error = "not-enrolled", str(err)
        return result
    with db.connect(settings.database_url, application_name="meterit-upload") as conn:
        # This session only moves bookkeeping the next run re-derives: a commit lost in a crash
        # means a batch is re-sent (same key, or new rows central counts as duplicates by the
        # natural key), never a reading lost; so it skips waiting for the WAL flush.
        conn.execute("SET synchronous_commit = off")
        conn.commit()
        if upload_paused(conn):
            logger.info("upload skipped: paused (resume it from the local UI or MCP)")
            result.stopped = "paused"
            for c in clients:
                c.close()
            return result
        after_id = 0
        online_recorded = False
        next_check = 0.0  # orphans and the pause flag: at start, then every few seconds
        stop: str | None = None
        inflight: deque[_InFlight] = deque()
        # Up to IN_FLIGHT POSTs at once, each on its own thread and HTTP session, while this
        # thread settles answered batches and claims the next: central's time and the edge
        # database's time overlap. Batches are claimed oldest first and settled in that order.
        poster = ThreadPoolExecutor(max_workers=IN_FLIGHT, thread_name_prefix="upload-post")
        free = list(clients)

        def submit(batch: Batch) -> _InFlight:
            c = free.pop()
            return _InFlight(batch, datetime.now(UTC), poster.submit(post, c, batch), c)

        try:
            while True:
                while stop is None and len(inflight) < IN_FLIGHT:
                    now = time.monotonic()
                    check = now >= next_check
                    if now >= deadline:
                        stop = "budget"
                    elif check and result.batches and upload_paused(conn):
                        stop = "paused"
                    else:
                        if check:
                            next_check = now + CHECK_EVERY_S
                        nxt, quarantined = claim_batch(conn, size, after_id, orphans=check)
                        result.quarantined_locally += quarantined
                        if nxt is None:
                            stop = "empty"
                        else:
                            if not nxt.resent:
                                after_id = nxt.last_id
                            inflight.append(submit(nxt))
                if not inflight:
                    break
                done = inflight.popleft()
                outcome = done.outcome()
                free.append(done.client)
                try:
                    settled = conclude(conn, done.batch, done.started, outcome)
                except CentralError as err:
                    stop, result.error = "error", str(err)
                    # said once per change by connectivity, not once a minute for a day
                    logger.debug(
                        "upload stopped: %s", err, extra=fields(batch_id=str(done.batch.id))
                    )
                    connectivity.record_failure(conn, str(err))
                    continue  # the others in flight were sent: settle them, claim no more
                _add(result, done.batch, settled)
                if settled.requeued:
                    after_id = 0
                if not online_recorded:
                    connectivity.record_success(conn)
                    online_recorded = True
        finally:
            poster.shutdown(wait=True)
            for c in clients:
                c.close()
        result.stopped = stop or "empty"
        if online_recorded and stop != "error":
            connectivity.record_success(conn)
    result.seconds = time.monotonic() - t0
    if result.batches:
        logger.info(
            "upload run: %d readings in %d batches (%d accepted, %d duplicates, %d rejected) "
            "in %.1f s; stopped: %s",
            result.sent,
            result.batches,
            result.accepted,
            result.duplicates,
            result.rejected,
            result.seconds,
            result.stopped,
        )
    return result
