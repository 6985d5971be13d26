"""Central accepts exactly the meters its appliances can poll: both sides use common.meter_spec."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from appliance.meters_file import MetersFileError, validate_meters
from central.errors import ApiError
from central.meters import parse_meter
from common.meter_spec import MeterSpec, PointSpec, meter_document, meters_document
from common.wire import HEADER_API_KEY, SYNC_CONFIG
from tests.central_fixtures import CentralServer

POINT = {"name": "energy_kwh", "object": "analog-input,1", "unit": "kWh"}
GOOD = {"external_id": "main-incomer", "address": "192.168.1.20:47808", "points": [POINT]}

CASES: list[tuple[str, dict[str, Any], str]] = [
    ("space in the id", {**GOOD, "external_id": "main incomer"}, "external_id"),
    ("id too long for the wire", {**GOOD, "external_id": "m" * 101}, "external_id"),
    ("host name, not an address", {**GOOD, "address": "plc-1.local"}, "address"),
    ("neither address nor instance", {**GOOD, "address": None}, "give an address"),
    ("wildcard device instance", {**GOOD, "device_instance": 4194303}, "device_instance"),
    ("no points", {**GOOD, "points": []}, "points"),
    (
        "misspelt object type",
        {**GOOD, "points": [{**POINT, "object": "analog-inptu,1"}]},
        "points[0].object",
    ),
    (
        "unknown property",
        {**GOOD, "points": [{**POINT, "property": "present-valu"}]},
        "points[0].property",
    ),
    ("unit too long", {**GOOD, "points": [{**POINT, "unit": "k" * 33}]}, "points[0].unit"),
    ("same point twice", {**GOOD, "points": [POINT, POINT]}, "points[1].name"),
    ("cov as text", {**GOOD, "cov": "yes"}, "cov"),
]


@pytest.mark.parametrize(
    ("meter", "field"), [(m, f) for _, m, f in CASES], ids=[c[0] for c in CASES]
)
def test_central_refuses_what_an_appliance_would_refuse(meter: dict[str, Any], field: str) -> None:
    with pytest.raises(ApiError) as central:
        parse_meter(meter)
    assert central.value.status == 422 and field in str(central.value)
    with pytest.raises(MetersFileError) as appliance:
        validate_meters([meter])
    assert field in str(appliance.value)


def test_what_central_accepts_an_appliance_loads_the_same(central_server: CentralServer) -> None:
    """A meter saved at central, pulled from the real ``/sync/config``, is what the appliance
    loads: the same meter, field for field, through common.meter_spec on both sides."""
    site = central_server.create_site("plant-1")
    central_server.add_meter(
        site.site_id,
        "main-incomer",
        [("energy_kwh", "analog-input,1", "kWh"), ("p", "accumulator, 3", "")],
        address="192.168.1.20:47808",
        device_instance=1001,
        name="Main incomer",
    )
    answer = requests.get(
        central_server.url(SYNC_CONFIG), headers={HEADER_API_KEY: site.api_key}, timeout=10
    )
    assert answer.status_code == 200, answer.text
    (spec,) = validate_meters(answer.json()["meters"])
    assert spec == MeterSpec(
        external_id="main-incomer",
        name="Main incomer",
        address="192.168.1.20:47808",
        device_instance=1001,
        points=(
            PointSpec("energy_kwh", "analog-input,1", "present-value", "kWh"),
            PointSpec("p", "accumulator,3", "present-value", ""),
        ),
    )
    assert answer.json()["meters"] == meters_document([spec])


def test_the_cov_opt_in_is_kept_by_both_sides_and_only_written_when_on() -> None:
    assert parse_meter({**GOOD, "cov": True})["cov"] is True
    assert parse_meter(GOOD)["cov"] is False
    (on,) = validate_meters([{**GOOD, "cov": True}])
    (off,) = validate_meters([GOOD])
    assert on.cov and not off.cov
    assert meter_document(on)["cov"] is True
    assert "cov" not in meter_document(off)  # a polled meter's document is what it always was


def test_the_central_form_carries_the_cov_checkbox() -> None:
    from werkzeug.datastructures import MultiDict

    from central.ui.meters import meter_from_form

    form = {
        "external_id": "m1",
        "address": "10.0.0.1",
        "point_name": "p",
        "point_object": "analog-input,1",
    }
    assert meter_from_form(MultiDict({**form, "cov": "1"}))["cov"] is True
    assert meter_from_form(MultiDict(form))["cov"] is False  # unticked: the browser sends nothing
