"""What a meter definition may be: the one set of checks for a local meters file, central's
operator input and central's ``/sync/config`` answer.

One set, because they are one chain: a meter an operator saves at central is pulled by every
appliance of the site, and an appliance refuses a config it cannot poll. Checked twice with
different rules, a typo accepted at central stops the whole site's meter sync; checked here, it
is refused where it is typed, with the field named.

A problem is ``(field, reason)``, the field a path inside the meter (``points[2].object``); each
caller words it for its reader (an installer's file, an API answer, a form).
"""

from __future__ import annotations

import builtins
import dataclasses
import functools
import re
from collections.abc import Iterable
from typing import Any

from common.problems import Problem, show
from common.wire import MAX_NAME_LENGTH, MAX_UNIT_LENGTH

EXTERNAL_ID_RE = re.compile(rf"^[A-Za-z0-9][A-Za-z0-9_.:-]{{0,{MAX_NAME_LENGTH - 1}}}$")
PROPERTY_RE = re.compile(r"^[a-z][a-z0-9-]*$")
OBJECT_RE = re.compile(r"^\s*([a-z][a-z0-9-]*)\s*,\s*(\d{1,7})\s*$")
# ip:port, ip, net:ip:port, net:mac (decimal or 0x hex), each optionally @router
ADDRESS_RE = re.compile(
    r"^(?:\d+:)?(?:\d{1,3}(?:\.\d{1,3}){3}(?::\d{1,5})?|\d+|0x[0-9A-Fa-f]+)"
    r"(?:@\d{1,3}(?:\.\d{1,3}){3}(?::\d{1,5})?)?$"
)
# BACnet instance numbers are 22 bits; 4194303 addresses "any device" in Who-Is and
# ReadProperty, so it is never a device's own
WILDCARD_INSTANCE = 4194303
MAX_DEVICE_INSTANCE = WILDCARD_INSTANCE - 1
MAX_OBJECT_INSTANCE = WILDCARD_INSTANCE
MAX_METER_NAME = 200
METER_FIELDS = frozenset({"external_id", "name", "address", "device_instance", "points", "cov"})
POINT_FIELDS = frozenset({"name", "object", "property", "unit"})


@dataclasses.dataclass(frozen=True)
class PointSpec:
    name: str
    object: str  # "analog-input,1"
    property: str = "present-value"
    unit: str = ""

    # builtins.property: the ``property`` field shadows the builtin inside this class
    @builtins.property
    def object_type(self) -> str:
        return self.object.split(",")[0]

    @builtins.property
    def object_instance(self) -> int:
        return int(self.object.split(",")[1])


@dataclasses.dataclass(frozen=True)
class MeterSpec:
    external_id: str
    name: str
    address: str | None
    device_instance: int | None
    points: tuple[PointSpec, ...]
    # change-of-value subscriptions instead of polling, polled again when notifications stop
    cov: bool = False


def meter_document(meter: MeterSpec) -> dict[str, Any]:
    """The meter as JSON: an item of a meters file, of discovery's output and of the
    ``/sync/config`` answer (one shape, so what one side writes the other reads)."""
    document: dict[str, Any] = {
        "external_id": meter.external_id,
        "name": meter.name,
        "address": meter.address,
        "device_instance": meter.device_instance,
        "points": [
            {"name": p.name, "object": p.object, "property": p.property, "unit": p.unit}
            for p in meter.points
        ],
    }
    if meter.cov:  # only when opted in: a polled meter's document stays what it always was
        document["cov"] = True
    return document


def meters_document(meters: Iterable[MeterSpec]) -> list[dict[str, Any]]:
    return [meter_document(m) for m in meters]


@functools.cache
def _bacnet_enums() -> tuple[Any, Any]:
    """BACnet's object types and property names, from the BACnet library (imported on first
    use: central only needs it when a meter is saved)."""
    from bacpypes3.basetypes import PropertyIdentifier  # type: ignore[import-untyped]
    from bacpypes3.primitivedata import ObjectType  # type: ignore[import-untyped]

    return ObjectType, PropertyIdentifier


def _names_a(enum: Any, name: str) -> bool:
    try:
        enum(name)
    except (ValueError, KeyError, TypeError):
        return False
    return True


def is_object_type(name: str) -> bool:
    return _names_a(_bacnet_enums()[0], name)


def is_property(name: str) -> bool:
    return _names_a(_bacnet_enums()[1], name)


def check_meter(
    item: Any, *, unknown_fields: bool = True
) -> tuple[MeterSpec | None, list[Problem]]:
    """The meter, or None and every problem found. ``unknown_fields``: refuse fields this
    shape does not have (a typo such as ``adress`` would otherwise be silently ignored)."""
    if not isinstance(item, dict):
        return None, [("", "expected an object with external_id, address and points")]
    problems: list[Problem] = []
    if unknown_fields:
        problems += _unknown(item, METER_FIELDS, "")
    external_id = item.get("external_id")
    if not isinstance(external_id, str) or not EXTERNAL_ID_RE.match(external_id):
        problems.append(
            (
                "external_id",
                f"{show(external_id)} is not an id; use letters, digits, '-', '_', '.', ':' "
                f"(up to {MAX_NAME_LENGTH}, starting with a letter or digit), such as main-incomer",
            )
        )
    # a meter without a display name is shown by its id
    name = item.get("name") or external_id
    if not isinstance(name, str) or len(name) > MAX_METER_NAME:
        problems.append(
            (
                "name",
                f'{show(name)} must be text of up to {MAX_METER_NAME} characters, such as "Main incomer"',
            )
        )
    address = item.get("address")
    if address is not None and (not isinstance(address, str) or not ADDRESS_RE.match(address)):
        problems.append(
            (
                "address",
                f"{show(address)} is not a BACnet/IP address; expected IP:PORT such as "
                "192.168.1.20:47808, or NET:MAC such as 2:17 for a device behind a router",
            )
        )
    instance = item.get("device_instance")
    if instance is not None and (
        isinstance(instance, bool)
        or not isinstance(instance, int)
        or not 0 <= instance <= MAX_DEVICE_INSTANCE
    ):
        problems.append(
            (
                "device_instance",
                f"{show(instance)} must be a whole number 0..{MAX_DEVICE_INSTANCE}",
            )
        )
    if address is None and instance is None:
        problems.append(("", "give an address, a device_instance, or both"))
    cov = item.get("cov", False)
    if not isinstance(cov, bool):
        problems.append(("cov", f"{show(cov)} must be true (subscribe to changes) or false (poll)"))
    points = item.get("points")
    specs: list[PointSpec] = []
    if not isinstance(points, list) or not points:
        problems.append(("points", "expected a non-empty list of data points"))
    else:
        for j, raw in enumerate(points):
            spec, found = _check_point(raw, f"points[{j}]", unknown_fields)
            problems += found
            if spec is not None:
                specs.append(spec)
        seen: dict[str, int] = {}
        for j, spec in enumerate(specs):
            if spec.name in seen:
                problems.append(
                    (
                        f"points[{j}].name",
                        f"{show(spec.name)} is also points[{seen[spec.name]}]; "
                        "data point names must be unique within a meter",
                    )
                )
            seen.setdefault(spec.name, j)
    if problems:
        return None, problems
    assert isinstance(external_id, str) and isinstance(name, str)
    return MeterSpec(external_id, name, address, instance, tuple(specs), cov), []


def _check_point(
    raw: Any, where: str, unknown_fields: bool
) -> tuple[PointSpec | None, list[Problem]]:
    if not isinstance(raw, dict):
        return None, [(where, "expected an object with name and object")]
    problems = _unknown(raw, POINT_FIELDS, where + ".") if unknown_fields else []
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME_LENGTH:
        problems.append(
            (
                f"{where}.name",
                f"{show(name)} must be text of 1 to {MAX_NAME_LENGTH} characters, such as energy_kwh",
            )
        )
    obj = raw.get("object")
    match = OBJECT_RE.match(obj) if isinstance(obj, str) else None
    if match is None:
        problems.append(
            (
                f"{where}.object",
                f"{show(obj)} is not a BACnet object id; expected TYPE,INSTANCE such as analog-input,1",
            )
        )
    elif not is_object_type(match.group(1)):
        problems.append(
            (
                f"{where}.object",
                f"{show(obj)} is not a BACnet object id ({show(match.group(1))} is not a BACnet object "
                "type); expected TYPE,INSTANCE such as analog-input,1",
            )
        )
    elif int(match.group(2)) > MAX_OBJECT_INSTANCE:
        problems.append(
            (f"{where}.object", f"instance {match.group(2)} is above {MAX_OBJECT_INSTANCE}")
        )
    prop = raw.get("property", "present-value")
    if not isinstance(prop, str) or not PROPERTY_RE.match(prop) or not is_property(prop):
        problems.append(
            (f"{where}.property", f"{show(prop)} is not a BACnet property; such as present-value")
        )
    unit = raw.get("unit", "")
    if unit is None:
        unit = ""
    if not isinstance(unit, str) or len(unit) > MAX_UNIT_LENGTH:
        problems.append(
            (
                f"{where}.unit",
                f"{show(unit)} must be text of up to {MAX_UNIT_LENGTH} characters, such as kWh",
            )
        )
    if problems:
        return None, problems
    assert isinstance(name, str) and match is not None and isinstance(prop, str)
    return PointSpec(name, f"{match.group(1)},{int(match.group(2))}", prop, unit), []


def _unknown(item: dict[str, Any], known: frozenset[str], prefix: str) -> list[Problem]:
    return [
        (f"{prefix}{key[:40]}", f"unknown field; expected one of {', '.join(sorted(known))}")
        for key in sorted(set(item) - known)
    ]
