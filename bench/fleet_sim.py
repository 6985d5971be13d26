"""Simulated appliances for ``bench/fleet.py``: no BACnet, real HTTP, the real wire contract.

One asyncio task per site plays its appliance's RQ worker, which runs its jobs one after the
other: every (simulated) minute it "collects" one reading of each data point (what the collector
would have committed), then runs the upload job, which drains the backlog oldest first in
batches (the appliance's sizes: its first batch, doubling while full ones keep coming up to its
most, when its settings have one), ``in_flight`` at a time, each under an idempotency key it
keeps until central has answered (a batch that failed is resent under the same key, as the
edge's ledger does); every fifth minute a heartbeat (``common.heartbeat``'s document, with the
backlog and meter states), once an hour a meter-config pull with ``If-None-Match``.

Sites' minutes are spread evenly over the minute (phases by the golden ratio, so any number of
sites is spread), their heartbeats over five minutes and their config pulls over the hour, as a
real fleet's clocks are. Faults: a site may lose its link for some minutes (it keeps collecting,
sends nothing, then drains what piled up), and a site may come back from a long outage with
hours of readings from before it joined the run (a backlog burst). 429 answers are waited out as
``Retry-After`` says (as the appliance's urllib3 retry does); a 5xx or a failed connection ends
the upload run, and the next minute's run resends the batch.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gzip
import json
import math
import random
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import aiohttp
import orjson

from appliance.settings import ApplianceSettings
from bench.fleet_sites import FleetSite
from bench.ingest import POINTS
from common import wire
from common.heartbeat import Heartbeat, MeterHeartbeat
from common.timestamps import format_ts

GOLDEN = (math.sqrt(5) - 1) / 2
MAX_429_WAITS = 5  # as the appliance's urllib3 retries
VERSIONS = {"meterit": "fleet-sim", "python": "3.11", "postgresql": "15"}


def appliance_default(name: str, fallback: int) -> int:
    """The appliance's default for a setting, or ``fallback`` for a setting it does not have:
    the simulator sizes its batches as the appliance at hand does."""
    for f in dataclasses.fields(ApplianceSettings):
        if f.name == name and isinstance(f.default, int):
            return f.default
    return fallback


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank); 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


@dataclass
class Stats:
    """What the fleet saw during one measuring window."""

    started: float = field(default_factory=time.monotonic)
    latency: dict[str, list[float]] = field(
        default_factory=lambda: {"readings": [], "heartbeat": [], "config": []}
    )
    status: Counter[tuple[str, int]] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    readings_sent: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    loop_lag: list[float] = field(default_factory=list)

    def record(self, kind: str, status: int, seconds: float) -> None:
        self.status[kind, status] += 1
        if status < 400:
            self.latency[kind].append(seconds)

    def count(self, low: int, high: int) -> int:
        return sum(n for (_, status), n in self.status.items() if low <= status <= high)


class Clock:
    """Monotonic time for scheduling, wall time for readings; ``minute_s`` real seconds make a
    simulated minute (60 unless the run compresses time, and then it says so)."""

    def __init__(self, minute_s: float) -> None:
        self.minute_s = minute_s
        self.t0 = time.monotonic()
        self.wall0 = datetime.now(UTC)

    def wall(self, mono: float) -> datetime:
        return self.wall0 + timedelta(seconds=mono - self.t0)


@dataclass
class Faults:
    """Per site and simulated hour: how often its link drops (for ``outage_minutes``, drawn
    uniformly) and how often it returns from a long outage with ``burst_hours`` of backlog."""

    outages_per_hour: float = 0.1
    outage_minutes: tuple[float, float] = (2.0, 15.0)
    bursts_per_hour: float = 0.01
    burst_hours: float = 4.0


class Minute(NamedTuple):
    """One collected minute of a site: its readings as the JSON items of a batch body,
    comma-separated (``common.wire.encode_batch``'s items, encoded once when collected)."""

    tick: int
    readings: int
    items: bytes


def batch_body(minutes: list[Minute]) -> bytes:
    """The gzip body of a batch of these minutes, as ``common.wire.encode_batch`` makes it."""
    raw = b'{"readings":[' + b",".join(m.items for m in minutes) + b"]}"
    return gzip.compress(raw, compresslevel=1)


class Appliance:
    """One simulated appliance: its backlog, its link, its schedule."""

    def __init__(self, fleet: Fleet, site: FleetSite, n_points: int, first_tick: int) -> None:
        self.fleet = fleet
        self.site = site
        self.points = POINTS[:n_points]
        clock = fleet.clock
        self.phase = (site.number * GOLDEN) % 1.0 * clock.minute_s
        self.tick = first_tick  # the next minute to collect
        self.first_tick = first_tick
        # unsynced readings, oldest first, one chunk per collected minute
        self.queue: deque[Minute] = deque()
        self.retry: deque[tuple[str, list[Minute]]] = deque()
        self.unsynced = 0
        self.size = fleet.batch_size  # readings the next batch of this upload run may carry
        self.sending: dict[str, list[Minute]] = {}  # posted, unanswered
        self.batch_seq = 0
        self.offline_until = 0.0
        self.back_at = 0.0  # when the link last came back (its drain is a burst, not lag)
        self.backfilled = False
        self.busy = False  # talking to central (a stop waits for the answer)
        self.etag: str | None = None
        self.energy = [1000.0 * (m + 1) for m in range(len(site.meters))]
        self.headers = {wire.HEADER_API_KEY: site.api_key, "User-Agent": "meterit-fleet-sim"}
        # a few sites have a dead meter, as a real fleet does (meter-unreachable alerts)
        self.dead_meter = site.meters[0] if site.number % 200 == 0 else None
        self.since = format_ts(clock.wall0)
        # a minute's items as one bytes template with the timestamp and value of each live
        # point left open (building 100 dicts and encoding them was a quarter of the
        # simulator's samples, CPU it took from the central it measures)
        self.items_template = b",".join(
            orjson.dumps({"meter": meter, "point": point, "unit": unit})[:-1].replace(b"%", b"%%")
            + b',"ts":"%s","value":%s}'
            for meter in site.meters
            if meter != self.dead_meter
            for point, unit in self.points
        )

    # -- time ---------------------------------------------------------------------------------
    def tick_at(self, tick: int) -> float:
        clock = self.fleet.clock
        return clock.t0 + self.phase + tick * clock.minute_s

    def online(self, now: float) -> bool:
        return now >= self.offline_until

    def oldest_tick(self) -> int | None:
        """The minute of the oldest reading not yet answered for (in flight counts)."""
        firsts = [chunks[0].tick for chunks in self.sending.values()]
        if self.retry:
            firsts.append(self.retry[0][1][0].tick)
        if self.queue:
            firsts.append(self.queue[0].tick)
        return min(firsts, default=None)

    # -- collection ---------------------------------------------------------------------------
    def readings_of(self, tick: int) -> Minute:
        """One reading of every point of every meter, stamped with the minute's wall time."""
        wall = self.fleet.clock.wall(self.tick_at(tick))
        # milliseconds, not whole seconds: compressed minutes may be shorter than a second
        ts = format_ts(wall.replace(microsecond=wall.microsecond // 1000 * 1000))
        n_points = len(self.points)
        readings: list[float] = []
        for m, meter in enumerate(self.site.meters):
            if meter == self.dead_meter:
                continue
            power = 20.0 + (self.site.number * 7 + m * 13 + tick) % 17
            self.energy[m] += power / 60
            wobble = (tick * 31 + m * 7) % 13 * 0.1
            values = (
                round(self.energy[m], 3),
                power,
                230.0 + wobble,
                231.0 - wobble,
                229.5 + wobble,
                power / 0.69,
                power / 0.70,
                power / 0.71,
                0.95,
                50.0 + wobble / 100,
            )
            readings.extend(values[:n_points])
        # a JSON number has no comma: the encoded list splits into the values as encoded
        encoded = orjson.dumps(readings)[1:-1].split(b",") if readings else []
        fields = [ts.encode()] * (2 * len(encoded))
        fields[1::2] = encoded
        return Minute(tick, len(encoded), self.items_template % tuple(fields))

    def collect(self, now: float) -> None:
        while self.tick_at(self.tick) <= now:
            minute = self.readings_of(self.tick)
            self.queue.append(minute)
            self.unsynced += minute.readings
            self.fleet.generated += minute.readings
            self.tick += 1

    def backfill(self) -> None:
        """Readings from the hours before the site joined the run (its long outage), put first
        in the queue: its next upload run is a burst of them."""
        ticks = round(self.fleet.faults.burst_hours * 60)
        for tick in range(self.first_tick - 1, self.first_tick - 1 - ticks, -1):
            minute = self.readings_of(tick)
            self.queue.appendleft(minute)
            self.unsynced += minute.readings
            self.fleet.generated += minute.readings
        self.backfilled = True

    # -- the appliance's worker ---------------------------------------------------------------
    async def run(self) -> None:
        fleet = self.fleet
        while not fleet.stopping:
            due = self.tick_at(self.tick)
            now = time.monotonic()
            if due > now:
                await asyncio.sleep(due - now)
                if fleet.stopping:
                    return
            now = time.monotonic()
            self.collect(now)
            self.busy = True
            try:
                await self.work(now, self.tick - 1)
            finally:
                self.busy = False

    async def work(self, now: float, minute: int) -> None:
        """One minute's jobs, in order, as the appliance's single RQ worker runs them."""
        if not self.online(now):
            return  # the link is down: it only collects
        rng = self.fleet.rng
        faults = self.fleet.faults
        if rng.random() < faults.outages_per_hour / 60:
            low, high = faults.outage_minutes
            self.offline_until = now + rng.uniform(low, high) * self.fleet.clock.minute_s
            self.back_at = self.offline_until
            return
        if not self.backfilled and rng.random() < faults.bursts_per_hour / 60:
            self.backfill()
            self.back_at = now
        if (minute + self.site.number) % self.fleet.upload_every == 0:
            await self.upload()
        if (minute + self.site.number) % self.fleet.heartbeat_every == 0:
            await self.heartbeat()
        if (minute + self.site.number) % self.fleet.config_every == 0:
            await self.pull_config()

    async def upload(self) -> None:
        """Drain the backlog: batches of whole minutes, ``in_flight`` at a time."""
        fleet = self.fleet
        self.size = fleet.batch_size
        while (self.retry or self.queue) and not fleet.stopping:
            batches: list[tuple[str, list[Minute]]] = []
            while len(batches) < fleet.in_flight and (self.retry or self.queue):
                batches.append(self.retry.popleft() if self.retry else self.next_batch())
            results = await asyncio.gather(*(self.post_batch(b) for b in batches))
            failed = [b for b, ok in zip(batches, results, strict=True) if not ok]
            if failed:
                self.retry.extendleft(reversed(failed))
                return

    def next_batch(self) -> tuple[str, list[Minute]]:
        chunks = [self.queue.popleft()]
        size = chunks[0].readings
        while self.queue and size + self.queue[0].readings <= self.size:
            chunk = self.queue.popleft()
            chunks.append(chunk)
            size += chunk.readings
        # as the appliance's pump: a full batch makes the next one twice as large
        full = size + (self.queue[0].readings if self.queue else 0) > self.size
        self.size = min(self.size * 2, self.fleet.batch_max) if full else self.fleet.batch_size
        self.batch_seq += 1
        return f"fleet-{self.site.site_id}-{self.batch_seq}", chunks

    async def post_batch(self, batch: tuple[str, list[Minute]]) -> bool:
        key, chunks = batch
        count = sum(chunk.readings for chunk in chunks)
        body = batch_body(chunks)
        headers = {
            **self.headers,
            wire.HEADER_IDEMPOTENCY_KEY: key,
            "Content-Type": "application/json",
            "Content-Encoding": "gzip",
        }
        self.sending[key] = chunks
        try:
            reply = await self.fleet.request("readings", "POST", wire.SYNC_READINGS, headers, body)
        finally:
            del self.sending[key]
        if reply is None:
            return False
        try:
            counts = wire.parse_batch_answer(reply.body, count)
        except ValueError as err:
            self.fleet.stats.errors[f"readings: {err}"[:120]] += 1
            return False
        stats = self.fleet.stats
        stats.readings_sent += count
        stats.accepted += counts.accepted
        stats.duplicates += counts.duplicates
        stats.rejected += len(counts.rejected)
        self.fleet.acknowledged += count
        self.fleet.accepted_total += counts.accepted
        self.unsynced -= count
        return True

    async def heartbeat(self) -> None:
        now = time.monotonic()
        oldest = self.oldest_tick()
        beat = Heartbeat(
            sent_at=self.fleet.clock.wall(now),
            versions=VERSIONS,
            backlog=self.unsynced,
            oldest_unsynced_age_s=None if oldest is None else max(0.0, now - self.tick_at(oldest)),
            dropped_readings=0,
            collection_paused=False,
            upload_paused=False,
            meters=tuple(
                MeterHeartbeat(
                    meter,
                    "unreachable" if meter == self.dead_meter else "reachable",
                    self.fleet.clock.wall0,
                    "no answer to ReadPropertyMultiple" if meter == self.dead_meter else None,
                )
                for meter in self.site.meters
            ),
            quarantined_readings=0,
        )
        headers = {**self.headers, "Content-Type": "application/json"}
        await self.fleet.request("heartbeat", "POST", wire.SYNC_HEARTBEAT, headers, beat.encode())

    async def pull_config(self) -> None:
        headers = dict(self.headers)
        if self.etag:
            headers["If-None-Match"] = self.etag
        reply = await self.fleet.request("config", "GET", wire.SYNC_CONFIG, headers, None)
        if reply is None:
            return
        if reply.status == 200:
            meters = reply.body.get("meters") if isinstance(reply.body, dict) else None
            if not isinstance(meters, list) or len(meters) != len(self.site.meters):
                self.fleet.stats.errors["config: not the site's meters"] += 1
        self.etag = reply.etag or self.etag


class Fleet:
    """Every simulated appliance, one HTTP client between them (a simulation shortcut: real
    appliances each open their own connections; ``connections`` bounds how many are open)."""

    def __init__(
        self,
        base_url: str,
        clock: Clock,
        *,
        n_points: int,
        batch_size: int = appliance_default("upload_batch_size", 1000),
        batch_max: int | None = None,
        in_flight: int = 2,
        upload_every: int = 1,
        heartbeat_every: int = 5,
        config_every: int = 60,
        faults: Faults | None = None,
        seed: int = 21,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.clock = clock
        self.n_points = n_points
        self.batch_size = batch_size
        self.batch_max = max(batch_size, batch_max or appliance_default("upload_batch_max", 0))
        self.in_flight = in_flight
        # minutes between upload runs, heartbeats and config pulls (the appliance's defaults)
        self.upload_every = upload_every
        self.heartbeat_every = heartbeat_every
        self.config_every = config_every
        self.faults = faults or Faults()
        self.rng = random.Random(seed)
        self.appliances: list[Appliance] = []
        self.tasks: list[asyncio.Task[None]] = []
        self.stats = Stats()
        self.stopping = False
        self.generated = 0
        self.acknowledged = 0
        self.accepted_total = 0
        self.session: aiohttp.ClientSession | None = None
        self.lag_task: asyncio.Task[None] | None = None

    async def open(self, connections: int) -> None:
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=connections, keepalive_timeout=20),
            # the appliance's timeouts: 5 s to connect, 60 s for the answer (a request waiting for
            # one of the shared connections is not a connect timeout: an appliance has its own)
            timeout=aiohttp.ClientTimeout(total=65, sock_connect=5, sock_read=60),
            auto_decompress=True,
        )
        self.lag_task = asyncio.create_task(self._watch_loop())

    async def close(self) -> None:
        """Stop: appliances waiting for their next minute at once, those talking to central once
        their request is answered (so every batch central accepted is counted as such)."""
        self.stopping = True
        for appliance, task in zip(self.appliances, self.tasks, strict=True):
            if not appliance.busy:
                task.cancel()
        if self.lag_task is not None:
            self.lag_task.cancel()
        _, late = await asyncio.wait(self.tasks, timeout=90)
        for task in late:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        if self.session is not None:
            await self.session.close()

    def add(self, sites: list[FleetSite]) -> None:
        """Start the appliances of ``sites``; each collects from its next minute on."""
        now = time.monotonic()
        for site in sites:
            appliance = Appliance(self, site, self.n_points, 0)
            # its first minute is its first phase after now
            first = max(0, math.ceil((now - self.clock.t0 - appliance.phase) / self.clock.minute_s))
            appliance.tick = appliance.first_tick = first
            self.appliances.append(appliance)
            self.tasks.append(asyncio.create_task(appliance.run()))

    def measure(self) -> Stats:
        """Start a new measuring window; returns it (filled in as requests complete)."""
        self.stats = Stats()
        return self.stats

    async def _watch_loop(self) -> None:
        """How late the event loop wakes: past a few tens of ms the simulator itself is the
        bottleneck and its latencies say nothing about central."""
        period = 0.25
        while True:
            started = time.monotonic()
            await asyncio.sleep(period)
            self.stats.loop_lag.append(time.monotonic() - started - period)

    async def request(
        self, kind: str, method: str, path: str, headers: dict[str, str], body: bytes | None
    ) -> Reply | None:
        """Central's answer, or None when the request failed (counted in the stats)."""
        assert self.session is not None
        for _ in range(MAX_429_WAITS + 1):
            started = time.monotonic()
            try:
                async with self.session.request(
                    method, self.base_url + path, headers=headers, data=body
                ) as resp:
                    payload = await resp.read()
                    status = resp.status
                    retry_after = resp.headers.get("Retry-After")
                    etag = resp.headers.get("ETag")
            except (TimeoutError, aiohttp.ClientError) as err:
                self.stats.errors[f"{kind}: {type(err).__name__}"] += 1
                return None
            self.stats.record(kind, status, time.monotonic() - started)
            if status == 429:
                await asyncio.sleep(min(60.0, float(retry_after or 1)))
                continue
            if status >= 400:
                return None
            return Reply(status, _json(payload), etag)
        return None

    def backlog(self, now: float) -> Backlog:
        """The fleet's unsynced readings, split into sites whose link is up and has been since
        their last upload run (what should stay small when central keeps up) and the rest."""
        grace = self.clock.minute_s * (self.upload_every + 1)
        out = Backlog()
        for a in self.appliances:
            if not a.online(now) or now - a.back_at < grace or a.tick == a.first_tick:
                out.offline_sites += not a.online(now)
                out.other += a.unsynced
                continue
            out.online += a.unsynced
            oldest = a.oldest_tick()
            if oldest is not None:
                out.oldest_online_s = max(out.oldest_online_s, now - a.tick_at(oldest))
        return out


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    body: Any  # the JSON answer; None for an empty one (a 304) or one that is not JSON
    etag: str | None


@dataclass
class Backlog:
    online: int = 0  # readings queued at sites that are up (and not draining an outage)
    oldest_online_s: float = 0.0
    other: int = 0  # readings queued at sites that are down or just came back
    offline_sites: int = 0


def _json(payload: bytes) -> Any:
    try:
        return json.loads(payload) if payload else None
    except ValueError:
        return None
