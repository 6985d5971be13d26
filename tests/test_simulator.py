"""The simulated meters themselves, over real UDP on loopback."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from appliance.bacnet.client import BacpypesClient, ClientConfig, DeviceTarget, PointRef
from appliance.bacnet.simulator import SimMeterSpec, meter_points, run_simulators
from appliance.meters_file import load_meters_file


def test_meter_points_have_energy_units_and_extras_beyond_the_catalog() -> None:
    points = meter_points(30)
    assert [p.units for p in points[:6]] == [
        "kilowatt-hours",
        "kilowatts",
        "volts",
        "amperes",
        "no-units",
        "hertz",
    ]
    assert points[29].object_id == "analog-input,30" and points[29].units == "percent"
    assert len({p.name for p in points}) == 30


def test_spec_rejects_a_non_standard_max_apdu() -> None:
    with pytest.raises(ValueError, match="max_apdu"):
        SimMeterSpec(1, 47999, max_apdu=100)


def test_latency_of_one_meter_does_not_delay_another() -> None:
    slow, fast = SimMeterSpec(3001, 47961, latency_ms=400), SimMeterSpec(3002, 47962)
    ref = [PointRef("analog-input", 2)]

    async def main() -> float:
        handle = await run_simulators([slow, fast])
        try:
            async with BacpypesClient(ClientConfig(local_address="127.0.0.1:47881")) as client:
                await client.read_device_info(DeviceTarget(fast.address))
                slow_read = asyncio.create_task(client.read_points(DeviceTarget(slow.address), ref))
                await asyncio.sleep(0.05)
                start = time.monotonic()
                await client.read_points(DeviceTarget(fast.address), ref)
                elapsed = time.monotonic() - start
                await slow_read
                return elapsed
        finally:
            handle.close()

    assert asyncio.run(main()) < 0.2


def test_a_port_in_use_is_refused_instead_of_shared() -> None:
    async def main() -> None:
        handle = await run_simulators([SimMeterSpec(3003, 47963)])
        try:
            with pytest.raises(OSError, match="in use"):
                await run_simulators([SimMeterSpec(3004, 47963)])
        finally:
            handle.close()

    asyncio.run(main())


def test_cli_writes_a_loadable_meters_file_and_stops_on_sigterm(tmp_path: Path) -> None:
    meters = tmp_path / "meters.json"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    code = "import sys; from appliance.bacnet.simulator import main; sys.exit(main(sys.argv[1:]))"
    args = ["--count", "2", "--base-port", "47964", "--first-instance", "3010"]
    proc = subprocess.Popen(
        [sys.executable, "-c", code, *args, "--write-meters", str(meters)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 15
        while not meters.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        loaded = load_meters_file(meters)
        assert [m.device_instance for m in loaded] == [3010, 3011]
        assert loaded[0].address == "127.0.0.1:47964" and len(loaded[0].points) == 20
        assert json.loads(meters.read_text())[1]["external_id"] == "sim-3011"

        async def read() -> object:
            async with BacpypesClient(ClientConfig(local_address="127.0.0.1:47884")) as client:
                refs = [PointRef.parse(p.object, p.property) for p in loaded[1].points]
                target = DeviceTarget(loaded[1].address, loaded[1].device_instance)
                return await client.read_points(target, refs)

        deadline = time.monotonic() + 10
        while True:  # the process may still be binding
            try:
                values = asyncio.run(read())
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        assert isinstance(values, dict) and all(isinstance(v, float) for v in values.values())
    finally:
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=15)
    assert proc.returncode == 0, output
    assert "simulated meter 3011 up at 127.0.0.1:47965" in output
