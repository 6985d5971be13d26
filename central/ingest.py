"""The readings writer: validate a batch, then COPY it into ``readings`` (``INSERT … ON CONFLICT
DO NOTHING`` from staging when some of it is already stored).

Exactly-once storage rests on two keys. The natural key (point_id, ts) makes a reading that
arrives twice (a retry with a new batch id, an overlap after an edge restore) a counted duplicate
rather than a second row. The idempotency key makes a replayed *batch* answer what it answered
the first time and write nothing: its answer is stored in ``sync_batches`` in the same
transaction as the rows, and the ``sync_batches`` row is inserted first, so a concurrent request
with the same key waits on that row's unique index and then finds the stored answer.

Speed comes from doing per-reading work once: a per-process (meter, point) -> point_id map per
site, refreshed only when the site's ``config_version`` changes; one binary COPY straight into
``readings`` for a backlog's batch of new readings (``store_rows``), or, for a live batch or
one with readings stored already, into the connection's temp staging table and one statement
that moves the staged rows; the hours written marked for the rollup job (``central.rollup``)
and the summaries kept in one statement; month partitions ensured only for months this
process has not seen.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from central import latest, metrics, point_days
from central.keys import SiteIdentity
from common.logs import fields
from common.problems import show
from common.wire import parse_reading

logger = logging.getLogger(__name__)


# What ingest keeps beside the readings, from a CTE named ``ins`` (point_id, ts, value) of rows
# just inserted: only rows actually inserted mark their hour for the rollup job
# (``central.rollup``), so a batch of duplicates leaves the rollup alone; each point's latest
# reading (``central.latest``) for alerts and pages that show the value now; its first and last
# of the day (``central.point_days``).
SUMMARIES = f"""dirty AS (
    INSERT INTO readings_hourly_dirty (site_id, hour)
    SELECT DISTINCT %s::int, date_trunc('hour', ts) FROM ins ORDER BY 2
    ON CONFLICT DO NOTHING
), {latest.CTE}, {point_days.CTE}"""

# The batch that may overlap stored readings: moved from the staging table with
# ``ON CONFLICT DO NOTHING``. The ORDER BY makes concurrent batches that share rows take their
# row locks in one order, so they wait for each other instead of deadlocking.
MOVE_SQL = f"""
WITH ins AS (
    INSERT INTO readings (point_id, ts, value)
    SELECT point_id, ts, value FROM ingest_staging ORDER BY point_id, ts
    ON CONFLICT DO NOTHING
    RETURNING point_id, ts, value
), {SUMMARIES}
SELECT count(*) FROM ins
"""

# The batch COPYed straight into ``readings`` (all of it inserted): the summaries from the
# staging table, which then holds only each point's first and last reading of each hour
# (``summary_rows``) — the same hours, days' ends and latest readings as the whole batch.
SUMMARIES_SQL = f"""
WITH ins AS (SELECT point_id, ts, value FROM ingest_staging), {SUMMARIES}
SELECT count(*) FROM ins
"""

_COPY_COLUMNS = "(point_id, ts, value) FROM STDIN (FORMAT BINARY)"
_COPY_TYPES = ["int4", "timestamptz", "float8"]


def summary_rows(rows: list[tuple[int, datetime, float]]) -> list[tuple[int, datetime, float]]:
    """Each point's first and last reading of each UTC hour among ``rows``: every hour, every
    day's first and last and every point's latest reading are among them, so the summaries
    computed from these equal those from all rows (a few thousand rows for 50,000)."""
    ends: dict[tuple[int, int, int, int, int], list[tuple[int, datetime, float]]] = {}
    get = ends.get
    for row in rows:
        ts = row[1]
        # the hour by attributes (a wire ``…Z`` parses to the UTC singleton): a third of the
        # time of ``timestamp()``, which cost central 2.5 s of a 1 M-reading drain
        utc = ts if ts.tzinfo is UTC else ts.astimezone(UTC)
        key = (row[0], utc.year, utc.month, utc.day, utc.hour)
        pair = get(key)
        if pair is None:
            ends[key] = [row, row]
        elif ts < pair[0][1]:
            pair[0] = row
        elif ts > pair[1][1]:
            pair[1] = row
    return [
        r for first, last in ends.values() for r in ((first,) if first is last else (first, last))
    ]


def _copy_rows(
    cur: psycopg.Cursor[Any], table: str, rows: list[tuple[int, datetime, float]]
) -> None:
    with cur.copy(f"COPY {table} {_COPY_COLUMNS}") as copy:
        copy.set_types(_COPY_TYPES)
        for row in rows:
            copy.write_row(row)


def store_rows(
    conn: psycopg.Connection[Any], site_id: int, rows: list[tuple[int, datetime, float]]
) -> int:
    """Write a batch's valid rows and their summaries inside the caller's transaction; how many
    were new (the rest are duplicates of stored readings).

    A batch with several readings per point and hour (a backlog's) is COPYed straight into
    ``readings``: a bulk load, about twice the speed of ``INSERT … ON CONFLICT`` from staging,
    and its summaries come from a few rows per point and hour. If any row is already stored (a
    retry under a new key, an overlap after a restore, a concurrent batch with the same rows),
    the COPY fails on the primary key, its savepoint is rolled back and nothing of it remains;
    the batch then goes the careful way, ``MOVE_SQL``, which counts duplicates.

    A live batch (a minute or two of each point) goes the careful way at once: its summary rows
    would be most of the batch, so the bulk load would COPY it twice and add the savepoint's
    round trips, for no fewer rows to summarise. (Its rows as array parameters of one statement
    instead of staged cost central more: psycopg dumps arrays element by element in Python.)"""
    summary = summary_rows(rows)
    with conn.cursor() as cur:
        if len(summary) * 2 > len(rows):
            return _move_rows(cur, site_id, rows)
        try:
            with conn.transaction():
                _copy_rows(cur, "readings", rows)
        except (psycopg.errors.UniqueViolation, psycopg.errors.DeadlockDetected):
            return _move_rows(cur, site_id, rows)
        _copy_rows(cur, "ingest_staging", summary)
        cur.execute(SUMMARIES_SQL, (site_id,)).fetchone()
        return len(rows)


def _move_rows(
    cur: psycopg.Cursor[Any], site_id: int, rows: list[tuple[int, datetime, float]]
) -> int:
    """``MOVE_SQL``: the rows staged, then inserted with ``ON CONFLICT DO NOTHING``."""
    _copy_rows(cur, "ingest_staging", rows)
    inserted = cur.execute(MOVE_SQL, (site_id,)).fetchone()
    return int(inserted[0]) if inserted else 0


@dataclass(frozen=True, slots=True)
class AcceptWindow:
    """How far back and ahead of now a reading's timestamp may be (settings
    ``accept_past_days`` / ``accept_future_hours``). Each month needs a partition, so a bounded
    window bounds the partitions one batch can create; a reading from 1970 or next year is a
    broken clock, not data worth a table."""

    past: timedelta = timedelta(days=366)
    future: timedelta = timedelta(hours=24)

    def reason(self, ts: datetime, now: datetime) -> str | None:
        if ts < now - self.past:
            return (
                f"ts: {ts.isoformat()} is more than {self.past.days} days old, past the "
                "accepted range (METERIT_ACCEPT_PAST_DAYS on central); check the appliance's clock"
            )
        if ts > now + self.future:
            return (
                f"ts: {ts.isoformat()} is more than {self.future.total_seconds() / 3600:g} h "
                "ahead, past the accepted range (METERIT_ACCEPT_FUTURE_HOURS on central); "
                "check the appliance's clock"
            )
        return None


@dataclass(slots=True)
class SiteMap:
    """A site's data points as ingest needs them, valid for one ``config_version``."""

    version: int
    # (meter, point) -> (point_id, unit, deactivated at: readings from then on are refused)
    points: dict[tuple[str, str], tuple[int, str, datetime | None]]
    meters: set[str]


@dataclass(slots=True)
class Outcome:
    accepted: int = 0
    duplicates: int = 0
    rejected: list[dict[str, Any]] = field(default_factory=list)

    def answer(self) -> dict[str, Any]:
        return {"accepted": self.accepted, "duplicates": self.duplicates, "rejected": self.rejected}


class Ingestor:
    """One per process; safe to share between the worker's threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sites: dict[int, SiteMap] = {}
        self._months: set[tuple[int, int]] = set()

    # -- the (meter, point) map ------------------------------------------------------------
    def site_map(self, conn: psycopg.Connection[Any], site: SiteIdentity) -> SiteMap:
        cached = self._sites.get(site.site_id)
        if cached is not None and cached.version == site.config_version:
            return cached
        rows = conn.execute(
            """SELECT m.external_id, p.name, p.id, p.unit,
                      least(m.deactivated_at, p.deactivated_at)
               FROM meters m LEFT JOIN meter_points p ON p.meter_id = m.id
               WHERE m.site_id = %s""",
            (site.site_id,),
        ).fetchall()
        fresh = SiteMap(
            site.config_version,
            {(r[0], r[1]): (r[2], r[3], r[4]) for r in rows if r[2] is not None},
            {r[0] for r in rows},
        )
        with self._lock:
            self._sites[site.site_id] = fresh
        return fresh

    # -- validation ------------------------------------------------------------------------
    def validate(
        self,
        items: list[Any],
        smap: SiteMap,
        site: SiteIdentity,
        now: datetime,
        window: AcceptWindow = AcceptWindow(),
    ) -> tuple[list[tuple[int, datetime, float]], list[dict[str, Any]]]:
        """(rows to write, rejected items by index and reason); every item is judged alone."""
        rows: list[tuple[int, datetime, float]] = []
        rejected: list[dict[str, Any]] = []
        points = smap.points
        earliest, latest = now - window.past, now + window.future
        append = rows.append
        for index, item in enumerate(items):
            try:
                meter, point, ts, value, unit = parse_reading(item)
            except ValueError as err:
                rejected.append({"index": index, "reason": str(err)})
                continue
            hit = points.get((meter, point))
            if hit is None:
                rejected.append({"index": index, "reason": self._unknown(meter, point, smap, site)})
                continue
            point_id, configured_unit, deactivated_at = hit
            if unit and configured_unit and unit != configured_unit:
                rejected.append(
                    {
                        "index": index,
                        "reason": f"unit: {show(unit)} differs from the unit {show(configured_unit)} "
                        f"configured for {meter}/{point}; fix the meter configuration",
                    }
                )
                continue
            if not earliest <= ts <= latest:
                rejected.append({"index": index, "reason": window.reason(ts, now)})
                continue
            if deactivated_at is not None and ts >= deactivated_at:
                # what was collected before the deactivation is kept, whenever it arrives
                rejected.append(
                    {
                        "index": index,
                        "reason": f"meter: {show(meter)} (or its point {show(point)}) was "
                        f"deactivated at {deactivated_at.isoformat()}; readings stamped after "
                        "that are refused (reactivate it on central to accept them)",
                    }
                )
                continue
            append((point_id, ts, value))
        return rows, rejected

    @staticmethod
    def _unknown(meter: str, point: str, smap: SiteMap, site: SiteIdentity) -> str:
        if meter not in smap.meters:
            return (
                f"meter: {show(meter)} is not a meter of site {show(site.site_name)} (id {site.site_id}); "
                "a site may only write its own meters: add it to the site's configuration"
            )
        return f"point: meter {show(meter)} has no data point {show(point)} in the site's configuration"

    # -- partitions --------------------------------------------------------------------------
    def ensure_partitions(
        self, conn: psycopg.Connection[Any], rows: list[tuple[int, datetime, float]]
    ) -> None:
        """Create missing month partitions, outside the batch's transaction.

        Creating a partition locks the parent table; doing it in its own short transaction
        (serialised by an advisory lock between workers) keeps that lock off the hot path.
        """
        if not rows:
            return
        # every month from the earliest to the latest reading: two passes of min/max are far
        # cheaper than converting each timestamp, and a batch rarely spans more than two months
        first = min(r[1] for r in rows).astimezone(UTC)
        last = max(r[1] for r in rows).astimezone(UTC)
        months: set[tuple[int, int]] = set()
        year, month = first.year, first.month
        while (year, month) <= (last.year, last.month):
            months.add((year, month))
            year, month = (year + 1, 1) if month == 12 else (year, month + 1)
        todo = sorted(months - self._months)
        if not todo:
            return
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(hashtext('meterit.readings_partitions'))")
            for year, month in todo:
                start = datetime(year, month, 1, tzinfo=UTC)
                conn.execute("SELECT ensure_readings_partitions(%s, %s)", (start, start))
        with self._lock:
            self._months.update(todo)

    # -- the batch -----------------------------------------------------------------------------
    def stored_answer(
        self, conn: psycopg.Connection[Any], site_id: int, key: str
    ) -> dict[str, Any] | None:
        row = conn.execute(
            "SELECT response FROM sync_batches WHERE site_id = %s AND idempotency_key = %s",
            (site_id, key),
        ).fetchone()
        return None if row is None else dict(row[0])

    def write_batch(
        self,
        conn: psycopg.Connection[Any],
        site: SiteIdentity,
        key: str,
        items: list[Any],
        window: AcceptWindow = AcceptWindow(),
    ) -> tuple[dict[str, Any], bool]:
        """(the answer, whether it is a replay of an earlier batch with the same key).

        The caller has usually answered plain replays already (``stored_answer``); the claim on
        ``sync_batches`` here settles the race of two requests carrying the same key. ``conn``
        is idle (the request's autocommit connection): the batch is one transaction of its own.
        """
        started = time.perf_counter()
        smap = self.site_map(conn, site)
        rows, rejected = self.validate(items, smap, site, datetime.now(UTC), window)
        self.ensure_partitions(conn, rows)
        outcome = Outcome(rejected=rejected)
        # The same statements in the same order as one ``conn.transaction()`` block, in two
        # round trips fewer: BEGIN goes out with the claim, and the stored answer with COMMIT,
        # pipelined. COPY cannot run in pipeline mode, so the transaction is entered
        # inside the first pipeline and outlives it (``conn.transaction()`` entered in a
        # pipeline would hold the pipeline open to its end).
        with contextlib.ExitStack() as batch:
            with conn.pipeline():
                batch.enter_context(psycopg.Transaction(conn))
                claim = conn.execute(
                    """INSERT INTO sync_batches (site_id, idempotency_key, response)
                       VALUES (%s, %s, '{}') ON CONFLICT DO NOTHING RETURNING 1""",
                    (site.site_id, key),
                )
            if claim.fetchone() is None:  # a concurrent request with this key committed first
                answer = self.stored_answer(conn, site.site_id, key)
                assert answer is not None
                metrics.INGEST_BATCHES.labels("replayed").inc()
                return answer, True
            if rows:
                outcome.accepted = store_rows(conn, site.site_id, rows)
                outcome.duplicates = len(rows) - outcome.accepted
            answer = outcome.answer()
            with conn.pipeline():
                conn.execute(
                    """UPDATE sync_batches SET response = %s
                       WHERE site_id = %s AND idempotency_key = %s""",
                    (Jsonb(answer), site.site_id, key),
                )
                batch.close()  # COMMIT
        elapsed = time.perf_counter() - started
        metrics.INGEST_SECONDS.observe(elapsed)
        metrics.INGEST_BATCHES.labels("written").inc()
        metrics.INGEST_READINGS.labels("accepted").inc(outcome.accepted)
        metrics.INGEST_READINGS.labels("duplicate").inc(outcome.duplicates)
        metrics.INGEST_READINGS.labels("rejected").inc(len(rejected))
        if rejected:
            # the first reason is usually the whole story (a missing meter, a wrong clock)
            logger.warning(
                "batch %s of site %s: %d rejected (first: item %d, %s), %d accepted, %d duplicates",
                key,
                site.site_id,
                len(rejected),
                rejected[0]["index"],
                rejected[0]["reason"],
                outcome.accepted,
                outcome.duplicates,
                extra=fields(site_id=site.site_id, batch_id=key),
            )
        else:
            logger.debug(
                "batch %s of site %s: %d accepted, %d duplicates in %.0f ms",
                key,
                site.site_id,
                outcome.accepted,
                outcome.duplicates,
                elapsed * 1000,
                extra=fields(site_id=site.site_id, batch_id=key),
            )
        return answer, False
