"""Collector polling benchmark: our client against BAC0's own polling, on the same simulated meters.

    .venv/bin/python bench/poll.py            # full run, prints the figures
    .venv/bin/python bench/poll.py --quick    # shorter, for a smoke test

The simulated meters run in separate processes (``meterit-appliance simulate``), so their work
does not share the measured client's event loop; each measurement runs in a fresh process, so
BAC0 is measured as a user gets it (our client patches bacpypes3 in its own process, see
appliance.bacnet.speedups). Both clients read exactly the same points of the same meters over
real UDP on loopback, and the meters answer both alike:

1. throughput: every meter read over and over for a fixed time, points/s for our path
   (BacpypesClient + poll_all, the code the collector daemon runs) and for BAC0
   (``BAC0.lite`` + ``readMultiple``, one request per meter, as its docs show; one meter at a
   time and 32 at once, the better one counts);
2. poll cycles of 200 meters x 20 points with 50 ms device latency: the first after a start
   (device info read too), a steady one, and a burst asking every meter at once; wall time and
   how many requests timed out (a timeout costs a retry even when the value is saved in the end).

Targets (DESIGN.md): ours >= 3x BAC0's points/s; the 200-meter cycle within 10 s.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import logging
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

from appliance.bacnet.client import BacpypesClient, ClientConfig, DeviceTarget, PointRef
from appliance.bacnet.transport import port_is_free
from appliance.collector.meters import PolledMeter, PolledPoint
from appliance.collector.poll import poll_all

HOST = "127.0.0.1"
# below the kernel's ephemeral range (32768+), so no other program's client socket is there
OUR_PORT = 21080
BAC0_PORT = 21090
THROUGHPUT_BASE_PORT = 21100
CYCLE_BASE_PORT = 21400
CONCURRENCY = 32  # the collector's default poll_concurrency


@dataclasses.dataclass(frozen=True)
class Fleet:
    """Simulated meters on consecutive ports, served by ``procs`` separate processes."""

    count: int
    base_port: int
    first_instance: int
    points: int
    latency_ms: float
    procs: int
    extra: tuple[str, ...] = ()  # more ``simulate`` options, e.g. trend logs

    def addresses(self) -> list[str]:
        return [f"{HOST}:{self.base_port + i}" for i in range(self.count)]

    def meters(self) -> list[PolledMeter]:
        refs = [PointRef("analog-input", i) for i in range(1, self.points + 1)]
        return [
            PolledMeter(
                meter_id=i + 1,
                external_id=f"sim-{self.first_instance + i}",
                target=DeviceTarget(address, self.first_instance + i),
                points=tuple(
                    PolledPoint(i * 1000 + n, f"p{n}", ref, "") for n, ref in enumerate(refs)
                ),
            )
            for i, address in enumerate(self.addresses())
        ]


@contextlib.contextmanager
def simulators(fleet: Fleet) -> Iterator[None]:
    """Start the fleet's simulator processes; returns once every meter is bound."""
    busy = [
        p
        for p in range(fleet.base_port, fleet.base_port + fleet.count)
        if not port_is_free(HOST, p)
    ]
    if busy:
        raise RuntimeError(f"UDP port(s) {busy[:5]} in use; stop what holds them")
    per_proc = -(-fleet.count // fleet.procs)
    procs: list[subprocess.Popen[str]] = []
    ready = []
    try:
        for start in range(0, fleet.count, per_proc):
            count = min(per_proc, fleet.count - start)
            cmd = [
                sys.executable,
                "-m",
                "appliance",
                "simulate",
                f"--count={count}",
                f"--base-port={fleet.base_port + start}",
                f"--first-instance={fleet.first_instance + start}",
                f"--points={fleet.points}",
                f"--latency-ms={fleet.latency_ms}",
                f"--host={HOST}",
                *fleet.extra,
            ]
            proc = subprocess.Popen(
                cmd,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                env={**os.environ, "METERIT_LOG_LEVEL": "warning"},
            )
            procs.append(proc)
            event = threading.Event()
            ready.append(event)
            threading.Thread(target=_watch, args=(proc, count, event), daemon=True).start()
        deadline = time.monotonic() + 60
        for proc, event in zip(procs, ready, strict=True):
            if not event.wait(max(0.0, deadline - time.monotonic())) or proc.poll() is not None:
                raise RuntimeError(f"simulator {proc.args!r} did not start")
        yield
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


def _watch(proc: subprocess.Popen[str], count: int, ready: threading.Event) -> None:
    """Set ``ready`` once the simulator has logged every meter up; drain its output after."""
    assert proc.stdout is not None
    up = 0
    for line in proc.stdout:
        if "up at" in line:
            up += 1
            if up == count:
                ready.set()
        elif "error" in line.lower() or "Traceback" in line:
            sys.stderr.write(f"simulator: {line}")


# ----- our path


def our_client(max_in_flight: int = max(CONCURRENCY * 2, 8)) -> BacpypesClient:
    """Configured as ``client_from_settings`` configures the daemon's."""
    return BacpypesClient(
        ClientConfig(
            local_address=f"{HOST}:{OUR_PORT}", timeout_base_s=3.0, max_in_flight=max_in_flight
        )
    )


def _count(results: Sequence[Any]) -> tuple[int, int]:
    values = sum(len(r.values) for r in results)
    failed = sum(len(r.point_errors) + (len(r.meter.points) if r.error else 0) for r in results)
    return values, failed


async def ours_throughput(fleet: Fleet, seconds: float) -> tuple[float, int, int]:
    """Points/s of back-to-back poll cycles; also the failed points and timeouts."""
    meters = fleet.meters()
    async with our_client() as client:
        await poll_all(client, meters, CONCURRENCY, 30)  # warm: device info, RPM support
        client.stats.timeouts = 0
        total = failed = 0
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            values, bad = _count(await poll_all(client, meters, CONCURRENCY, 30))
            total, failed = total + values, failed + bad
        elapsed = time.perf_counter() - start
        return total / elapsed, failed, client.stats.timeouts


CYCLES = (
    # label, meters at once: a cold cycle reads every device's info first, as after a start;
    # the burst asks every meter at once, so all answers arrive together (a lossy receive
    # buffer shows up here as timeouts)
    ("cold", CONCURRENCY),
    ("warm", CONCURRENCY),
    ("burst", 0),
)


async def ours_cycle(fleet: Fleet) -> dict[str, float]:
    """The cycles of CYCLES, one after the other, with one client."""
    meters = fleet.meters()
    figures: dict[str, float] = {}
    async with our_client(max_in_flight=2 * len(meters)) as client:
        for label, concurrency in CYCLES:
            client.stats = type(client.stats)()
            start = time.perf_counter()
            results = await poll_all(client, meters, concurrency or len(meters), 54)
            figures[f"{label}_s"] = time.perf_counter() - start
            values, failed = _count(results)
            figures[f"{label}_values"] = values
            figures[f"{label}_failed"] = failed
            figures[f"{label}_timeouts"] = client.stats.timeouts
            figures[f"{label}_requests"] = client.stats.rpm_requests + client.stats.rp_requests
    return figures


# ----- BAC0's path


def _bac0_request(address: str, points: int) -> str:
    """BAC0's documented string form. Written 'analogInput 1 presentValue analogInput 2 ...' it
    mis-parses a request of several objects (the next object's name is taken for an instance);
    the 'analogInput:1' form parses, so that is what is used."""
    objects = " ".join(f"analogInput:{i} presentValue" for i in range(1, points + 1))
    return f"{address} {objects}"


async def bac0_throughput(fleet: Fleet, seconds: float, concurrency: int) -> tuple[float, int]:
    """Points/s of BAC0 reading every meter with one ``readMultiple`` each, ``concurrency``
    meters at once (1 = one after the other, as BAC0's own device polling does)."""
    import BAC0  # type: ignore[import-untyped]

    BAC0.log_level("error")
    requests = [_bac0_request(a, fleet.points) for a in fleet.addresses()]
    gate = asyncio.Semaphore(concurrency)

    async def read(request: str) -> int:
        async with gate:
            try:
                values = await bacnet.readMultiple(request)
            except Exception:  # BAC0 raises its own exception types for a failed read
                return 0
        return sum(isinstance(v, int | float) for v in values)

    bacnet = BAC0.lite(ip=f"{HOST}/32", port=BAC0_PORT, ping=False)
    try:
        async with bacnet:
            warm = await asyncio.gather(*(read(r) for r in requests))
            if sum(warm) != fleet.count * fleet.points:
                logging.warning("BAC0 warm-up read %d of %d values", sum(warm), fleet.count * 20)
            total = failed = 0
            start = time.perf_counter()
            while time.perf_counter() - start < seconds:
                counts = await asyncio.gather(*(read(r) for r in requests))
                total += sum(counts)
                failed += fleet.count * fleet.points - sum(counts)
            elapsed = time.perf_counter() - start
    finally:
        with contextlib.suppress(Exception):
            bacnet.disconnect()
    return total / elapsed, failed


# ----- main


def _isolated(fn: Any, *args: Any) -> Any:
    """Run one measurement in a fresh process: ours patches bacpypes3 (appliance.bacnet.speedups)
    when its client is created, and BAC0 must be measured as a user gets it, unpatched."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(_run_async, (fn, *args))


def _run_async(fn: Any, *args: Any) -> Any:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    return asyncio.run(fn(*args))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="shorter runs, fewer meters")
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each throughput run")
    parser.add_argument("--rounds", type=int, default=2, help="throughput rounds per client")
    parser.add_argument("--meters", type=int, default=50, help="meters in the throughput runs")
    parser.add_argument("--procs", type=int, default=2, help="simulator processes")
    parser.add_argument("--cycle-meters", type=int, default=200)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--skip-bac0", action="store_true")
    parser.add_argument("--skip-cycle", action="store_true")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.quick:
        args.seconds, args.meters, args.rounds = 3.0, 20, 1
    fleet = Fleet(args.meters, THROUGHPUT_BASE_PORT, 5000, 20, 0.0, args.procs)
    print(f"throughput: {fleet.count} meters x {fleet.points} points, {args.seconds:g} s each")
    ours = bac0 = 0.0
    with simulators(fleet):
        # rounds alternate the clients and the best of each counts, so a burst of load from
        # elsewhere on the machine does not decide the ratio
        for n in range(1, args.rounds + 1):
            rate, failed, timeouts = _isolated(ours_throughput, fleet, args.seconds)
            print(
                f"  [{n}] ours (BacpypesClient + poll_all):  {rate:9,.0f} points/s"
                f"  ({failed} failed points, {timeouts} timeouts)"
            )
            ours = max(ours, rate)
            for concurrency in () if args.skip_bac0 else (1, CONCURRENCY):
                rate, failed = _isolated(bac0_throughput, fleet, args.seconds, concurrency)
                print(
                    f"  [{n}] BAC0 (lite + readMultiple, {concurrency:2d} at once):"
                    f" {rate:9,.0f} points/s  ({failed} failed)"
                )
                bac0 = max(bac0, rate)
    if bac0:
        ratio = ours / bac0
        verdict = "meets" if ratio >= 3 else "MISSES"
        print(
            f"  best: ours {ours:,.0f}, BAC0 {bac0:,.0f} points/s;"
            f" ratio {ratio:.2f}x ({verdict} the 3x target)"
        )
    if args.skip_cycle:
        return 0
    cycle = Fleet(args.cycle_meters, CYCLE_BASE_PORT, 6000, 20, args.latency_ms, args.procs)
    print(f"cycle: {cycle.count} meters x {cycle.points} points, {cycle.latency_ms:g} ms latency")
    with simulators(cycle):
        figures = _isolated(ours_cycle, cycle)
    expected = cycle.count * cycle.points
    for label, concurrency in CYCLES:
        seconds = figures[f"{label}_s"]
        verdict = "meets" if seconds <= 10 else "MISSES"
        print(
            f"  {label:5s} cycle, {concurrency or cycle.count:3d} at once: {seconds:6.2f} s"
            f" ({verdict} the 10 s target), "
            f"{figures[f'{label}_values']:.0f}/{expected} values, "
            f"{figures[f'{label}_requests']:.0f} requests, "
            f"{figures[f'{label}_timeouts']:.0f} timed out"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
