"""Trend-log backfill benchmark: readings read back with ReadRange, against polling in the same run.

    .venv/bin/python bench/backfill.py            # 10 meters x 20 points, a week at 15 min
    .venv/bin/python bench/backfill.py --quick    # 2 meters, a day

The simulated meters run in their own processes (``meterit-appliance simulate`` with trend
logs), as in bench/poll.py. Measured with the collector's own client (BacpypesClient):

1. backfill: every point's trend log read back over the whole history, meters at once and each
   meter's trend logs at once (what the collector's backfill does), readings/s;
2. reference: the same client polling the same points' present-values with ReadPropertyMultiple
   for the same wall time, points/s (the collector's poll path).

The ratio says what one reading costs to read back compared with polling it live.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from appliance.bacnet.client import BacpypesClient, ClientConfig
from appliance.collector.poll import poll_all
from bench.poll import HOST, Fleet, simulators

OUR_PORT = 21580
BASE_PORT = 21600


async def backfill(fleet: Fleet, history_s: int) -> tuple[int, float]:
    config = ClientConfig(local_address=f"{HOST}:{OUR_PORT}")
    async with BacpypesClient(config) as client:
        meters = fleet.meters()
        logs = [await client.trend_logs(m.target) for m in meters]
        until = datetime.now(UTC)
        since = until - timedelta(seconds=history_s)
        started = time.perf_counter()
        answers = await asyncio.gather(
            *(
                client.read_trend(meter.target, log, since, until)
                for meter, meter_logs in zip(meters, logs, strict=True)
                for log in meter_logs.values()
            )
        )
        took = time.perf_counter() - started
    return sum(len(a) for a in answers), took


async def polling(fleet: Fleet, seconds: float) -> tuple[int, float]:
    config = ClientConfig(local_address=f"{HOST}:{OUR_PORT + 1}")
    async with BacpypesClient(config) as client:
        meters = fleet.meters()
        await poll_all(client, meters, 32, 30.0)  # device info, plans: not measured
        points, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            results = await poll_all(client, meters, 32, 30.0)
            points += sum(len(r.values) for r in results)
        return points, time.perf_counter() - started


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    count, history_s = (2, 86400) if args.quick else (10, 7 * 86400)
    interval_s = 900
    fleet = Fleet(
        count=count,
        base_port=BASE_PORT,
        first_instance=9001,
        points=20,
        latency_ms=0.0,
        procs=1,
        extra=(f"--trend-interval-s={interval_s}", f"--trend-history-s={history_s}"),
    )
    with simulators(fleet):
        readings, took = asyncio.run(backfill(fleet, history_s))
        polled, poll_took = asyncio.run(polling(fleet, max(2.0, took)))
    rate, reference = readings / took, polled / poll_took
    load = os.getloadavg()
    print(
        f"backfill: {count} meters x {fleet.points} trend logs, {history_s / 86400:g} day(s) at "
        f"{interval_s // 60} min: {readings} readings in {took:.2f} s = {rate:,.0f} readings/s"
    )
    print(f"reference, polling the same points: {reference:,.0f} points/s")
    print(f"ratio backfill / polling: {rate / reference:.2f}")
    print(f"load average: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
