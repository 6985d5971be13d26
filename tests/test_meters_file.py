"""The meters file loader: good files load as typed specs, bad ones name every bad field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from appliance.meters_file import MetersFileError, dump_meters, load_meters_file, parse_meters
from common.meter_spec import MeterSpec, PointSpec

GOOD = [
    {
        "external_id": "main-incomer",
        "name": "Main incomer",
        "address": "127.0.0.1:47901",
        "device_instance": 1001,
        "points": [
            {
                "name": "energy_kwh",
                "object": "analog-input,1",
                "property": "present-value",
                "unit": "kWh",
            },
            {"name": "power_kw", "object": "analog-input,2", "unit": "kW"},
        ],
    },
    {
        "external_id": "behind-router",
        "address": "2:17",
        "points": [{"name": "e", "object": "accumulator,3"}],
    },
    {
        "external_id": "by-instance",
        "device_instance": 77,
        "points": [{"name": "e", "object": "analog-input,1"}],
    },
]


def errors_for(data: object) -> list[str]:
    with pytest.raises(MetersFileError) as info:
        parse_meters(json.dumps(data))
    return info.value.problems


def test_good_file_loads_as_frozen_typed_specs(tmp_path: Path) -> None:
    path = tmp_path / "meters.json"
    path.write_text(json.dumps(GOOD))
    meters = load_meters_file(path)
    assert meters[0] == MeterSpec(
        "main-incomer",
        "Main incomer",
        "127.0.0.1:47901",
        1001,
        (
            PointSpec("energy_kwh", "analog-input,1", "present-value", "kWh"),
            PointSpec("power_kw", "analog-input,2", "present-value", "kW"),
        ),
    )
    assert meters[1].name == "behind-router" and meters[1].address == "2:17"
    assert meters[2].address is None and meters[2].device_instance == 77
    first = meters[0].points[0]
    assert (first.object_type, first.object_instance) == ("analog-input", 1)
    with pytest.raises(AttributeError):
        meters[0].name = "x"  # type: ignore[misc]


def test_dumped_meters_load_back_unchanged() -> None:
    meters = parse_meters(json.dumps(GOOD))
    assert parse_meters(dump_meters(meters)) == meters


def test_misspelled_object_type_names_meter_field_and_fix() -> None:
    bad = json.loads(json.dumps(GOOD))
    bad[2]["points"][0]["object"] = "analog-inptu,1"
    assert errors_for(bad) == [
        "meters file: meters[2] (by-instance).points[0].object: 'analog-inptu,1' is not a BACnet "
        "object id ('analog-inptu' is not a BACnet object type); expected TYPE,INSTANCE such as "
        "analog-input,1"
    ]


def test_every_problem_is_reported_at_once() -> None:
    bad = [
        {"external_id": "a b", "address": "not-an-ip", "points": []},
        {"external_id": "m", "device_instance": -1, "pointz": [], "points": [{"object": "x"}]},
        {
            "external_id": "dup",
            "address": "10.0.0.1",
            "points": [{"name": "p", "object": "analog-input,1", "property": "present-valu"}],
        },
        {"external_id": "ok", "points": [{"name": "p", "object": "analog-input,1"}]},
    ]
    problems = errors_for(bad)
    text = "\n".join(problems)
    assert "meters[0] (a b).external_id" in text
    assert "meters[0] (a b).address: 'not-an-ip' is not a BACnet/IP address" in text
    assert "meters[0] (a b).points: expected a non-empty list" in text
    assert "meters[1] (m).device_instance: -1" in text
    assert "meters[1] (m).pointz: unknown field" in text
    assert "meters[1] (m).points[0].name" in text
    assert "meters[2] (dup).points[0].property: 'present-valu'" in text
    assert "meters[3] (ok): give an address, a device_instance, or both" in text


def test_duplicate_external_ids_and_point_names_are_refused() -> None:
    point = {"name": "p", "object": "analog-input,1"}
    bad = [
        {"external_id": "x", "address": "10.0.0.1:47808", "points": [point, point]},
        {"external_id": "y", "address": "10.0.0.2", "points": [point]},
        {"external_id": "y", "address": "10.0.0.3", "points": [point]},
    ]
    text = "\n".join(errors_for(bad))
    assert "meters[0] (x).points[1].name: 'p' is also points[0]" in text
    assert "meters[2] (y).external_id: duplicate of meters[1]" in text


def test_not_json_or_not_a_list_says_so(tmp_path: Path) -> None:
    with pytest.raises(MetersFileError, match="not valid JSON at line 1"):
        parse_meters("{oops")
    with pytest.raises(MetersFileError, match="expected a JSON list of meters"):
        parse_meters('{"meters": []}')
    with pytest.raises(MetersFileError, match="cannot read"):
        load_meters_file(tmp_path / "missing.json")
