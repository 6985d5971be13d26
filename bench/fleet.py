"""Fleet capacity: how many sites one central carries, with simulated appliances over real HTTP.

Run with ``.venv/bin/python -m bench.fleet`` (``--help`` for the ramp and the load). It makes a
fresh central database on the PostgreSQL the tests use (``tests/harness.py``), starts central
under gunicorn and its worker (hourly rollup, alert evaluation every 30 s, mail, reports) with
their default settings, and drives one asyncio process of simulated appliances
(``bench/fleet_sim.py``: each its own site and API key, 10 meters x 10 points, one reading per
point a minute, uploads every minute, heartbeats every 5 minutes, meter-config pulls hourly,
outages and backlog bursts) against it.

It ramps the number of sites (sites are added in bulk between steps, ``bench/fleet_sites.py``);
each step runs a warm-up minute, so that every site has begun its minute, then measures for
``--measure-s``: batch, heartbeat and config latency, 429 / 5xx / failed requests, the backlog
of sites whose link is up, the rollup's lag and the worker's alert evaluations
(``bench/fleet_watch.py``). A step passes when

- p95 batch latency < 500 ms, and no 5xx answer or failed request;
- no backlog grows: the queued readings of online sites do not climb over the step, and none
  of them has a reading older than three minutes unsent;
- the rollup keeps up: no due site-hour waits longer than four rollup intervals (4 min);
- alert evaluation keeps up: it runs at least every 2 x 30 s (+15 s), each run within 30 s.

The ramp stops at the first step that fails; the capacity is the largest passing number of sites
and the data points per second it means. The simulator shares the machine with central (it
reports its own CPU time and event-loop lag: a loop waking late means the simulator, not central,
is the limit, and the run says so). The same-run reference is ``psql \\copy`` of readings into the
same table (``bench/ingest.py``): the storage floor's readings/s, against the fleet's.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

from bench.fleet_sim import Clock, Faults, Fleet, Stats, appliance_default, percentile
from bench.fleet_sites import add_sites
from bench.fleet_watch import (
    BackendCpu,
    JobRun,
    RollupState,
    WorkerWatch,
    cpu_seconds,
    loadavg,
    rollup_state,
)
from bench.ingest import time_psql_copy
from central import jobs
from common import db
from tests import harness
from tests.central_fixtures import CentralServer, central_env, start_central_server

TARGET_SITES = 10_000
SAMPLE_S = 5.0
ALERT_GAP_S = 2 * jobs.ALERTS_INTERVAL_S + 15
ROLLUP_LAG_S = 4 * jobs.ROLLUP_INTERVAL_S
LOOP_LAG_S = 0.2  # p99 of the simulator's event-loop lateness that makes its latencies suspect
SIMULATOR_BUSY = 0.6  # share of a core the simulator must use to be called the limit


@dataclass
class Sample:
    at: float
    online: int
    oldest_online_s: float
    other: int
    offline_sites: int
    rollup: RollupState


@dataclass
class Step:
    sites: int
    seconds: float
    stats: Stats
    samples: list[Sample]
    runs: list[JobRun]
    window_start: datetime
    cpu: dict[str, float]
    load: str
    scale: float = 1.0  # real sites one simulated site stands for (60 / the minute's seconds)
    failures: list[str] = field(default_factory=list)
    simulator_bound: bool = False

    @property
    def ok(self) -> bool:
        return not self.failures and not self.simulator_bound

    def rate(self, what: str) -> float:
        stats = self.stats
        if what == "readings":
            return stats.readings_sent / self.seconds
        return sum(stats.status.values()) / self.seconds

    def central_cpu(self) -> float:
        """CPU seconds central used in the window: gunicorn, worker, their PostgreSQL backends."""
        return self.cpu["central"] + self.cpu["worker"] + self.cpu["postgres"]

    def projected_sites(self) -> float:
        """Sites the machine's cores would carry at this step's CPU cost per site, if central
        had them to itself (a projection from measured CPU time, not a measurement)."""
        spent = self.central_cpu()
        if not spent:
            return 0.0
        return self.sites * self.scale * (os.cpu_count() or 1) * self.seconds / spent

    def alert_runs(self) -> list[JobRun]:
        return [r for r in self.runs if r.name == "evaluate_alerts"]

    def alert_gap(self, window_end: datetime) -> float:
        """The longest time between two evaluation starts, the window's end counting as one."""
        starts = [r.started for r in self.alert_runs()] + [window_end]
        return max((b - a).total_seconds() for a, b in itertools.pairwise(starts))


def judge(step: Step, args: argparse.Namespace, window_end: datetime) -> None:
    p95_limit_s, minute_s = args.p95_ms / 1000, args.minute_s
    stats = step.stats
    p95 = percentile(stats.latency["readings"], 95)
    if not stats.latency["readings"]:
        step.failures.append("no batch answered")
    elif p95 >= p95_limit_s:
        step.failures.append(f"p95 batch latency {p95 * 1000:.0f} ms >= {p95_limit_s * 1000:.0f}")
    failed = stats.count(500, 599) + sum(stats.errors.values())
    if failed:
        step.failures.append(f"{failed} requests failed (5xx or no answer)")
    third = max(1, len(step.samples) // 3)
    first = sum(s.online for s in step.samples[:third]) / third
    last = sum(s.online for s in step.samples[-third:]) / third
    # tolerance: ten seconds' worth of the fleet's readings, so noise is not growth
    slack = step.sites * args.meters * args.points / minute_s * 10
    if last > 1.5 * first + slack:
        step.failures.append(f"online backlog grows: {first:,.0f} -> {last:,.0f} readings")
    oldest = step.samples[-1].oldest_online_s if step.samples else 0.0
    if oldest > (args.upload_every + 2) * minute_s:
        step.failures.append(f"an online site's oldest unsent reading is {oldest:.0f} s old")
    lag = max((s.rollup.lag_s for s in step.samples[-third:]), default=0.0)
    if lag > ROLLUP_LAG_S:
        step.failures.append(f"rollup lags {lag:.0f} s > {ROLLUP_LAG_S} s")
    evaluations = step.alert_runs()
    if not evaluations:
        step.failures.append("no alert evaluation ran in the window")
    else:
        gap = step.alert_gap(window_end)
        slowest = max(r.seconds for r in evaluations)
        if gap > ALERT_GAP_S:
            step.failures.append(f"alert evaluations {gap:.0f} s apart > {ALERT_GAP_S} s")
        if slowest > jobs.ALERTS_INTERVAL_S:
            step.failures.append(f"an alert evaluation took {slowest:.1f} s")
    if percentile(stats.loop_lag, 99) > LOOP_LAG_S:
        # late wake-ups with an idle simulator mean a contended machine, not a busy simulator
        step.simulator_bound = step.cpu["simulator"] / step.seconds > SIMULATOR_BUSY


async def run_step(
    fleet: Fleet,
    n_sites: int,
    *,
    measure_s: float,
    url: str,
    watch: WorkerWatch,
    worker_name: str | None,
    pids: dict[str, int],
) -> Step:
    window_start = datetime.now(UTC)
    stats = fleet.measure()
    cpu0 = {"simulator": time.process_time()} | {k: cpu_seconds(p) for k, p in pids.items()}
    backends = BackendCpu(url)
    await asyncio.to_thread(backends.start)
    samples: list[Sample] = []
    started = time.monotonic()
    while True:
        now = time.monotonic()
        backlog = fleet.backlog(now)
        rollup = await asyncio.to_thread(rollup_state, url)
        await asyncio.to_thread(backends.sample)
        samples.append(
            Sample(
                now,
                backlog.online,
                backlog.oldest_online_s,
                backlog.other,
                backlog.offline_sites,
                rollup,
            )
        )
        if now - started >= measure_s:
            break
        await asyncio.sleep(min(SAMPLE_S, started + measure_s - time.monotonic()))
    seconds = time.monotonic() - started
    fleet.measure()  # what follows (the next step's warm-up) is not this step's
    cpu = (
        {"simulator": time.process_time() - cpu0["simulator"]}
        | {k: cpu_seconds(p) - cpu0[k] for k, p in pids.items()}
        | {"postgres": backends.seconds()}
    )
    since = window_start - timedelta(seconds=ALERT_GAP_S)
    runs = await asyncio.to_thread(watch.runs, since, worker_name)
    step = Step(n_sites, seconds, stats, samples, runs, window_start, cpu, loadavg())
    step.scale = 60 / fleet.clock.minute_s
    step.runs = [r for r in runs if r.started >= window_start] + _last_before(runs, window_start)
    step.runs.sort(key=lambda r: r.started)
    return step


def _last_before(runs: list[JobRun], start: datetime) -> list[JobRun]:
    """The last alert evaluation before the window, so the first gap is measured from it."""
    before = [r for r in runs if r.name == "evaluate_alerts" and r.started < start]
    return before[-1:]


def report_step(step: Step, minute_s: float) -> None:
    s = step.stats
    lat = s.latency
    ms = [percentile(lat["readings"], q) * 1000 for q in (50, 95, 99)]
    rollups = [r for r in step.runs if r.name == "rollup_hours" and r.started >= step.window_start]
    evals = [r for r in step.alert_runs() if r.started >= step.window_start]
    eval_s = [float((r.result or {}).get("seconds", r.seconds)) for r in evals]
    first, last = step.samples[0], step.samples[-1]
    print(
        f"\n== {step.sites:,} sites: {step.rate('readings'):,.0f} readings/s, "
        f"{step.rate('requests'):,.1f} requests/s over {step.seconds:.0f} s"
        f" (load average {step.load})"
    )
    print(
        f"   batches   p50 {ms[0]:.0f} ms  p95 {ms[1]:.0f} ms  p99 {ms[2]:.0f} ms  "
        f"max {max(lat['readings'], default=0) * 1000:.0f} ms  ({len(lat['readings'])} answered)"
    )
    print(
        f"   heartbeat p95 {percentile(lat['heartbeat'], 95) * 1000:.0f} ms "
        f"({len(lat['heartbeat'])});  config p95 {percentile(lat['config'], 95) * 1000:.0f} ms "
        f"({len(lat['config'])})"
    )
    print(
        f"   answers   429: {s.count(429, 429)}  5xx: {s.count(500, 599)}  "
        f"other 4xx: {s.count(400, 499) - s.count(429, 429)}  failed: {sum(s.errors.values())}"
        + (f"  ({', '.join(f'{k} x{v}' for k, v in s.errors.most_common(3))})" if s.errors else "")
    )
    print(
        f"   readings  accepted {s.accepted:,}  duplicates {s.duplicates:,}  rejected {s.rejected:,}"
    )
    print(
        f"   backlog   online sites {first.online:,} -> {last.online:,} readings "
        f"(max {max(x.online for x in step.samples):,}), oldest unsent {last.oldest_online_s:.0f} s;"
        f" down or draining: {last.offline_sites} sites, {last.other:,} readings"
    )
    print(
        f"   rollup    lag {first.rollup.lag_s:.0f} -> {last.rollup.lag_s:.0f} s "
        f"(max {max(x.rollup.lag_s for x in step.samples):.0f}), due site-hours "
        f"{first.rollup.due_marks:,} -> {last.rollup.due_marks:,}; {len(rollups)} runs, "
        f"longest {max((r.seconds for r in rollups), default=0):.1f} s, "
        f"{sum(int(r.result or 0) for r in rollups):,} site-hours recomputed"
    )
    print(
        f"   alerts    {len(evals)} evaluations, each {min(eval_s, default=0):.2f}-"
        f"{max(eval_s, default=0):.2f} s (job {max((r.seconds for r in evals), default=0):.2f} s),"
        f" longest gap {step.alert_gap(step.window_start + timedelta(seconds=step.seconds)):.0f} s"
        if evals
        else "   alerts    no evaluation in the window"
    )
    print(
        "   cpu       "
        + ", ".join(f"{k} {v / step.seconds:.0%}" for k, v in step.cpu.items())
        + f" of one core; simulator loop lag p99 {percentile(s.loop_lag, 99) * 1000:.0f} ms"
    )
    requests = sum(s.status.values()) or 1
    print(
        f"   central   CPU per request: gunicorn {step.cpu['central'] / requests * 1000:.1f} ms"
        f" + PostgreSQL {step.cpu['postgres'] / requests * 1000:.1f} ms; at this cost "
        f"{os.cpu_count()} idle cores would carry ~{step.projected_sites():,.0f} sites (projection)"
    )
    if step.simulator_bound:
        print("   SIMULATOR-BOUND: its event loop wakes late; the figures above understate central")
    elif percentile(s.loop_lag, 99) > LOOP_LAG_S:
        print(
            "   contended machine: the simulator's loop woke late while it was mostly idle, so "
            "every process here waited for a CPU (see the load average)"
        )
    print("   " + ("pass" if step.ok else "FAIL: " + "; ".join(step.failures)))


async def ramp(
    args: argparse.Namespace, url: str, server: CentralServer, worker: subprocess.Popen[bytes]
) -> tuple[list[Step], Fleet]:
    watch = WorkerWatch(server.redis_url, worker.pid)
    worker_name = None
    for _ in range(100):
        worker_name = await asyncio.to_thread(watch.worker_name)
        if worker_name:
            break
        await asyncio.sleep(0.2)
    clock = Clock(args.minute_s)
    faults = Faults(args.outages_per_hour, (2.0, 15.0), args.bursts_per_hour, args.burst_hours)
    fleet = Fleet(
        server.base_url,
        clock,
        n_points=args.points,
        batch_size=args.batch,
        batch_max=args.batch_max,
        upload_every=args.upload_every,
        faults=faults,
    )
    await fleet.open(args.connections)
    pids = {"central": server.process.pid, "worker": worker.pid}
    steps: list[Step] = []
    have = 0
    try:
        for n in args.steps:
            made = time.monotonic()
            sites = await asyncio.to_thread(
                add_sites,
                url,
                have + 1,
                n,
                n_meters=args.meters,
                n_points=args.points,
                sites_per_tenant=args.sites_per_tenant,
            )
            fleet.add(sites)
            have = n
            # every new site must have begun its upload rhythm before its backlog is judged
            warmup = max(args.warmup_s, args.upload_every * args.minute_s + 10)
            print(
                f"\n{n:,} sites ({len(sites):,} added in {time.monotonic() - made:.1f} s); "
                f"warming up {warmup:.0f} s",
                flush=True,
            )
            await asyncio.sleep(warmup)
            step = await run_step(
                fleet,
                n,
                measure_s=args.measure_s,
                url=url,
                watch=watch,
                worker_name=worker_name,
                pids=pids,
            )
            judge(step, args, datetime.now(UTC))
            report_step(step, args.minute_s)
            sys.stdout.flush()
            steps.append(step)
            if not step.ok:
                break
    finally:
        await fleet.close()
    return steps, fleet


def reference_copy(url: str, folder: Path, rows: int) -> float:
    """readings/s of ``psql \\copy`` into the same (emptied) readings table."""
    with psycopg.connect(url) as conn:
        points = [r[0] for r in conn.execute("SELECT id FROM meter_points ORDER BY id LIMIT 20000")]
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    path = folder / "reference.csv"
    with path.open("w") as fh:
        for i in range(rows):
            ts = start + timedelta(minutes=i // len(points))
            fh.write(f"{points[i % len(points)]},{ts.isoformat()},{i * 0.5}\n")
    return rows / time_psql_copy(url, path)


def summarize(steps: list[Step], fleet: Fleet, args: argparse.Namespace, copy_rate: float) -> int:
    passed = [s for s in steps if s.ok]
    per_site = args.meters * args.points
    print("\n== Fleet capacity")
    if args.minute_s != 60:
        print(f"   TIME COMPRESSED: a simulated minute is {args.minute_s:g} s; rates are real")
    if not passed:
        print("   no step passed")
        capacity = 0
    else:
        best = passed[-1]
        capacity = best.sites
        nominal = capacity * per_site / args.minute_s
        stop = steps[-1]
        bound = (
            "the next step failed: " + "; ".join(stop.failures)
            if not stop.ok and not stop.simulator_bound
            else "the simulator ran out of CPU first: central's capacity is at least this"
            if stop.simulator_bound
            else "the ramp ended without a failing step: the capacity is at least this"
        )
        print(
            f"   {capacity:,} sites of {args.meters} meters x {args.points} points: "
            f"{nominal:,.0f} data points/s nominal, {best.rate('readings'):,.0f} readings/s "
            f"sustained with outages and bursts, {best.rate('requests'):.0f} requests/s"
        )
        print(f"   ({bound})")
        print(
            f"   CPU projection: at the measured CPU cost per request, {os.cpu_count()} cores "
            f"to itself would carry ~{best.projected_sites():,.0f} sites"
            + (
                f" (~{stop.projected_sites():,.0f} from the failing step's cost)"
                if stop is not best
                else ""
            )
        )
        if copy_rate:
            print(
                f"   reference: psql \\copy into the same table {copy_rate:,.0f} readings/s; "
                f"the fleet at capacity sustains {best.rate('readings') / copy_rate:.2f} of it"
            )
    print(
        f"   target >= {TARGET_SITES:,} sites: {'met' if capacity >= TARGET_SITES else 'NOT MET'}"
    )
    print(f"   load average at the end: {loadavg()} on {os.cpu_count()} CPUs")
    return 0 if capacity >= TARGET_SITES else 1


def check_stored(url: str, fleet: Fleet) -> None:
    """Every reading central acknowledged as accepted is stored once, and nothing else."""
    with psycopg.connect(url) as conn:
        stored = harness.scalar(conn, "SELECT count(*) FROM readings")
    print(
        f"\n   exactly once: {fleet.generated:,} readings made, {fleet.acknowledged:,} "
        f"acknowledged, {fleet.accepted_total:,} accepted, {stored:,} stored"
        + ("" if stored == fleet.accepted_total else "  MISMATCH")
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench.fleet",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--steps",
        type=lambda text: [int(x) for x in text.split(",")],
        default=[250, 500, 1000, 2000, 3000, 5000, 7500, 10000, 15000, 20000],
        help="numbers of sites to ramp through (comma-separated)",
    )
    p.add_argument("--warmup-s", type=float, default=60, help="before each step's measurement")
    p.add_argument("--measure-s", type=float, default=90, help="each step's measurement")
    p.add_argument(
        "--minute-s", type=float, default=60, help="real seconds per simulated minute (60: none)"
    )
    p.add_argument("--meters", type=int, default=10, help="meters per site")
    p.add_argument("--points", type=int, default=10, help="data points per meter (<= 10)")
    p.add_argument("--sites-per-tenant", type=int, default=1000)
    p.add_argument(
        "--upload-every",
        type=int,
        default=1,
        help="minutes between a site's uploads (the appliance's default: 1)",
    )
    p.add_argument(
        "--batch",
        type=int,
        default=appliance_default("upload_batch_size", 1000),
        help="readings in an upload run's first batch (default: the appliance's)",
    )
    p.add_argument(
        "--batch-max",
        type=int,
        default=None,
        help="most readings in a batch while a backlog lasts (default: the appliance's)",
    )
    p.add_argument("--p95-ms", type=float, default=500, help="batch latency limit")
    p.add_argument("--connections", type=int, default=256, help="HTTP connections at most")
    p.add_argument("--outages-per-hour", type=float, default=0.1, help="per site")
    p.add_argument("--bursts-per-hour", type=float, default=0.01, help="per site")
    p.add_argument("--burst-hours", type=float, default=4, help="backlog of a burst")
    p.add_argument("--reference-rows", type=int, default=500_000, help="0: no \\copy reference")
    p.add_argument("--keep", action="store_true", help="keep the database afterwards")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    admin = harness.admin_postgres_url()
    redis_url = harness.redis_server_url()
    name = harness.create_database(admin, prefix="meterit_fleet")
    url = harness.with_database(admin, name)
    folder = Path(tempfile.mkdtemp(prefix="meterit-fleet-"))
    server: CentralServer | None = None
    worker: subprocess.Popen[bytes] | None = None
    try:
        db.migrate(url, harness.CENTRAL_MIGRATIONS)
        # the production default of one gunicorn worker per CPU (the tests' server runs one)
        server = start_central_server(url, redis_url, folder, {"METERIT_GUNICORN_WORKERS": "0"})
        with (folder / "worker.log").open("wb") as log:
            worker = subprocess.Popen(
                [sys.executable, "-m", "central", "worker"],
                env=central_env(url, redis_url, folder),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        print(
            f"central {server.base_url} (gunicorn, default settings), its worker, database {name};"
            f" load average {loadavg()} on {os.cpu_count()} CPUs",
            flush=True,
        )
        steps, fleet = asyncio.run(ramp(args, url, server, worker))
        check_stored(url, fleet)
        server.stop()
        server = None
        worker.terminate()
        worker.wait(timeout=30)
        copy_rate = reference_copy(url, folder, args.reference_rows) if args.reference_rows else 0
        return summarize(steps, fleet, args, copy_rate)
    finally:
        if server is not None:
            server.stop()
        if worker is not None and worker.poll() is None:
            worker.terminate()
            worker.wait(timeout=30)
        if args.keep:
            print(f"database kept: {url}; logs in {folder}")
        else:
            harness.drop_database(admin, name)
            shutil.rmtree(folder, ignore_errors=True)
        harness.stop_embedded()


if __name__ == "__main__":
    sys.exit(main())
