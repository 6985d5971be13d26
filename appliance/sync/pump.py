"""The upload pump: one upload run drains the unsynced backlog to central, oldest first.

It claims batches from the ledger (``appliance.sync.ledger``, where the exactly-once argument
is written down), POSTs up to ``IN_FLIGHT`` of them at once on their own threads and HTTP
sessions while this thread settles answered batches and claims the next, and stops when the
backlog is empty, the time budget is spent, the upload is paused or central fails.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg

from appliance.settings import ApplianceSettings
from appliance.sync import connectivity, failures, ledger
from appliance.sync.central import CentralClient, CentralError, NotEnrolled, Response
from appliance.sync.ledger import Batch
from common import db, wire
from common.logs import fields

logger = logging.getLogger(__name__)

CHECK_EVERY_S = 5.0  # how often a run looks for orphaned batches and the pause flag
IN_FLIGHT = 2  # batches POSTed at once by one run (each held by the run's batch lock)


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


@dataclass
class Settled:
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    requeued: bool = False  # some rows went back to the backlog, behind the run's cursor
    too_large: bool = False  # central refused the batch's size (413): send fewer at once


class BatchSize:
    """How many readings the next claim asks for. A run starts at ``upload_batch_size`` and
    doubles after each full batch up to ``upload_batch_max``: a backlog of a week drains in
    batches of tens of thousands (per batch, the edge's claim and settlement, central's
    transaction and its per-point upkeep cost nearly the same for 1,000 readings as for
    50,000), while a run that finds a minute's readings sends one small batch as before."""

    def __init__(self, first: int, most: int) -> None:
        self.first = first
        self.most = max(first, most)
        self.now = first

    def claimed(self, rows: int) -> None:
        self.now = min(self.now * 2, self.most) if rows >= self.now else self.first

    def too_large(self, rows: int) -> None:
        """Central answered 413 to a batch of ``rows``: that many (or more) is over its limit."""
        self.most = max(1, min(self.most, rows // 2))
        self.now = min(self.now, self.first, self.most)


def post(client: CentralClient, batch: Batch) -> Response:
    """POST one batch (gzip JSON) under its id as the idempotency key."""
    return client.post_readings(wire.encode_batch(batch.items()), str(batch.id))


def commit_outcome(
    conn: psycopg.Connection[Any],
    batch: Batch,
    started: datetime,
    outcome: Response | BaseException,
) -> Settled:
    """Settle a batch from central's answer, or record why it was not taken (committed).

    Raises CentralError when central did not take the batch; the batch then stays leased to
    nobody (the lock is released) and the next run re-sends it with the same key.
    """
    bid = str(batch.id)
    try:
        if isinstance(outcome, BaseException):
            raise outcome
        answer = wire.parse_batch_answer(outcome.body, len(batch))
    except (CentralError, ValueError) as err:
        conn.rollback()
        if isinstance(err, CentralError) and err.status == 413:
            # central stored nothing: the rows go back to the backlog for smaller batches
            ledger.commit_refusal(conn, batch, started, {}, str(err))
            return Settled(requeued=True, too_large=True)
        if isinstance(err, CentralError) and err.status in (400, 422):
            refused = wire.refused_items(err.body, len(batch))
            if refused:
                ledger.commit_refusal(conn, batch, started, refused, str(err))
                return Settled(rejected=len(refused), requeued=True)
        ledger.commit_failure(conn, batch, started, str(err))
        if isinstance(err, ValueError):
            raise CentralError(failures.BAD_ANSWER, f"to batch {bid}: {err}") from err
        raise
    ledger.commit_settlement(
        conn,
        batch,
        started,
        accepted=answer.accepted,
        duplicates=answer.duplicates,
        rejected=answer.rejected,
    )
    logger.debug(
        "batch of %d readings synced: %d accepted, %d duplicates, %d rejected",
        len(batch),
        answer.accepted,
        answer.duplicates,
        len(answer.rejected),
        extra=fields(batch_id=bid),
    )
    return Settled(answer.accepted, answer.duplicates, len(answer.rejected))


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
    result.sent += len(batch)
    result.accepted += settled.accepted
    result.duplicates += settled.duplicates
    result.rejected += settled.rejected
    result.batch_ids.append(str(batch.id))


def upload_paused(conn: psycopg.Connection[Any]) -> bool:
    row = conn.execute("SELECT upload_paused FROM appliance_state").fetchone()
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
    first = batch_size or settings.upload_batch_size
    size = BatchSize(first, max(first, settings.upload_batch_max))
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
        # A claim of 50,000 rows crosses PostgreSQL's JIT threshold, and compiling it took
        # longer (1.6 s) than running it; its sort fits in memory with a little more work_mem.
        conn.execute("SET jit = off")
        conn.execute("SET TIME ZONE 'UTC'")  # readings' ts come back in UTC: the wire's ``…Z``
        conn.execute("SET work_mem = '32MB'")
        conn.commit()
        paused = upload_paused(conn)
        conn.commit()  # no transaction left open while batches are posted
        if paused:
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
                        conn.commit()  # ends the pause flag's read, if any
                        if check:
                            next_check = now + CHECK_EVERY_S
                        nxt, quarantined = ledger.commit_claim(
                            conn, size.now, after_id, orphans=check
                        )
                        result.quarantined_locally += quarantined
                        if nxt is None:
                            stop = "empty"
                        else:
                            if not nxt.resent:
                                after_id = nxt.last_id
                                size.claimed(len(nxt) + quarantined)
                            inflight.append(submit(nxt))
                if not inflight:
                    break
                done = inflight.popleft()
                outcome = done.outcome()
                free.append(done.client)
                try:
                    settled = commit_outcome(conn, done.batch, done.started, outcome)
                except CentralError as err:
                    stop, result.error = "error", str(err)
                    # said once per change by connectivity, not once a minute for a day
                    logger.debug(
                        "upload stopped: %s", err, extra=fields(batch_id=str(done.batch.id))
                    )
                    connectivity.commit_offline(conn, err)
                    continue  # the others in flight were sent: settle them, claim no more
                if settled.too_large:
                    size.too_large(len(done.batch))
                    logger.warning(
                        "central refused a batch of %d readings as too large; sending at most "
                        "%d at once (lower METERIT_UPLOAD_BATCH_MAX to central's limit)",
                        len(done.batch),
                        size.most,
                        extra=fields(batch_id=str(done.batch.id)),
                    )
                _add(result, done.batch, settled)
                if settled.requeued:
                    after_id = 0
                if not online_recorded:
                    connectivity.commit_online(conn)
                    online_recorded = True
        finally:
            poster.shutdown(wait=True)
            for c in clients:
                c.close()
        result.stopped = stop or "empty"
        if online_recorded and stop != "error":
            connectivity.commit_online(conn)
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
