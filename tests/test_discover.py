"""Discovery finds simulated meters over real UDP and proposes a meters file that loads."""

from __future__ import annotations

import asyncio
import json

from appliance.bacnet.client import BacpypesClient, ClientConfig
from appliance.bacnet.simulator import SimMeterSpec, run_simulators
from appliance.discover import discover, point_name
from appliance.meters_file import parse_meters
from common.meter_spec import MeterSpec, meters_document


def test_point_names_are_snake_case_and_unique() -> None:
    taken: set[str] = set()
    assert point_name("Energy (kWh)", "analog-input,1", taken) == "energy_kwh"
    assert point_name("Energy (kWh)", "analog-input,2", taken) == "energy_kwh_2"
    assert point_name(None, "analog-input,3", taken) == "analog_input_3"


def test_discovery_proposes_a_meters_file_with_names_and_units() -> None:
    spec = SimMeterSpec(device_instance=3001, port=48301, points=6)

    async def scenario() -> list[MeterSpec]:
        sims = await run_simulators([spec])
        try:
            config = ClientConfig(local_address="127.0.0.1:48300", who_is_timeout_s=1.0)
            async with BacpypesClient(config) as client:
                return await discover(client, None, None, spec.address)
        finally:
            sims.close()

    meters = meters_document(asyncio.run(scenario()))
    assert len(meters) == 1
    meter = meters[0]
    assert meter["device_instance"] == 3001
    assert meter["address"] == spec.address
    assert len(meter["points"]) == 6
    units = {p["object"]: p["unit"] for p in meter["points"]}
    assert "kWh" in units.values() and "V" in units.values() and "Hz" in units.values()
    # what discovery writes is exactly what `meters load` accepts
    loaded = parse_meters(json.dumps(meters))
    assert loaded[0].external_id == meter["external_id"]
    assert [p.name for p in loaded[0].points] == [p["name"] for p in meter["points"]]
