"""The local meters file: what ``meters load`` reads and discovery writes.

JSON (no extra dependency), a list of meters.  Every problem is reported at once, each naming the
meter, the field and the fix, because the reader is an installer on site editing by hand.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from appliance.bacnet.client import DeviceTarget, PointRef, parse_object_id

_EXTERNAL_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")
_PROPERTY_RE = re.compile(r"^[a-z][a-z0-9-]*$")
# ip:port, ip, net:ip:port, net:mac (decimal or 0x hex), each optionally @router
_ADDRESS_RE = re.compile(
    r"^(?:\d+:)?(?:\d{1,3}(?:\.\d{1,3}){3}(?::\d{1,5})?|\d+|0x[0-9A-Fa-f]+)"
    r"(?:@\d{1,3}(?:\.\d{1,3}){3}(?::\d{1,5})?)?$"
)
MAX_INSTANCE = 4194302
EXAMPLE = (
    '[{"external_id": "main-incomer", "name": "Main incomer", "address": "192.168.1.20:47808", '
    '"device_instance": 1001, "points": [{"name": "energy_kwh", "object": "analog-input,1", '
    '"property": "present-value", "unit": "kWh"}]}]'
)


class MetersFileError(ValueError):
    """All problems found in a meters file, one per line in ``str()``."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


@dataclasses.dataclass(frozen=True)
class PointSpec:
    name: str
    object: str  # "analog-input,1"
    property: str = "present-value"
    unit: str = ""

    def ref(self) -> PointRef:
        """A method, not a property: the ``property`` field shadows the builtin here."""
        return PointRef.parse(self.object, self.property)


@dataclasses.dataclass(frozen=True)
class MeterSpec:
    external_id: str
    name: str
    address: str | None
    device_instance: int | None
    points: tuple[PointSpec, ...]

    @property
    def target(self) -> DeviceTarget:
        return DeviceTarget(self.address, self.device_instance)


def load_meters_file(path: str | Path) -> list[MeterSpec]:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise MetersFileError([f"{path}: cannot read: {err.strerror}"]) from err
    return parse_meters(text, source=str(path))


def parse_meters(text: str, source: str = "meters file") -> list[MeterSpec]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise MetersFileError(
            [f"{source}: not valid JSON at line {err.lineno} column {err.colno}: {err.msg}"]
        ) from err
    return validate_meters(data, source)


def validate_meters(data: Any, source: str = "meters file") -> list[MeterSpec]:
    if not isinstance(data, list):
        raise MetersFileError([f"{source}: expected a JSON list of meters, such as {EXAMPLE}"])
    problems: list[str] = []
    meters = [_meter(item, i, problems) for i, item in enumerate(data)]
    _check_unique(meters, problems)
    if problems:
        raise MetersFileError([f"{source}: {p}" for p in problems])
    return [m for m in meters if m is not None]


def dump_meters(meters: Sequence[MeterSpec]) -> str:
    """The file text for these meters (what discovery proposes)."""
    items = [
        {
            "external_id": m.external_id,
            "name": m.name,
            "address": m.address,
            "device_instance": m.device_instance,
            "points": [dataclasses.asdict(p) for p in m.points],
        }
        for m in meters
    ]
    return json.dumps(items, indent=2) + "\n"


def _meter(item: Any, index: int, problems: list[str]) -> MeterSpec | None:
    if not isinstance(item, dict):
        problems.append(f"meters[{index}]: expected an object with external_id, address, points")
        return None
    where = f"meters[{index}]"
    if isinstance(item.get("external_id"), str):
        where += f" ({item['external_id']})"
    before = len(problems)
    _unknown_keys(
        item, {"external_id", "name", "address", "device_instance", "points"}, where, problems
    )

    external_id = item.get("external_id")
    if not isinstance(external_id, str) or not _EXTERNAL_ID_RE.match(external_id):
        problems.append(
            f"{where}.external_id: {external_id!r} is not an id; use letters, digits, '-', '_', "
            "'.', ':' (up to 128), such as main-incomer"
        )
    # a meter without a display name (central allows one) is shown by its id
    name = item.get("name") or external_id
    if not isinstance(name, str):
        problems.append(f'{where}.name: {name!r} must be a string such as "Main incomer"')

    address = item.get("address")
    if address is not None and (not isinstance(address, str) or not _ADDRESS_RE.match(address)):
        problems.append(
            f"{where}.address: {address!r} is not a BACnet/IP address; expected IP:PORT such as "
            "192.168.1.20:47808, or NET:MAC such as 2:17 for a device behind a router"
        )
    instance = item.get("device_instance")
    if instance is not None and (
        isinstance(instance, bool)
        or not isinstance(instance, int)
        or not 0 <= instance <= MAX_INSTANCE
    ):
        problems.append(
            f"{where}.device_instance: {instance!r} must be a whole number 0..{MAX_INSTANCE}"
        )
    if address is None and instance is None:
        problems.append(f"{where}: give an address, a device_instance, or both")

    points = item.get("points")
    specs: list[PointSpec] = []
    if not isinstance(points, list) or not points:
        problems.append(f"{where}.points: expected a non-empty list of points")
    else:
        specs = [
            p
            for j, raw in enumerate(points)
            if (p := _point(raw, f"{where}.points[{j}]", problems))
        ]
        seen: dict[str, int] = {}
        for j, spec in enumerate(specs):
            if spec.name in seen:
                problems.append(
                    f"{where}.points[{j}].name: {spec.name!r} is also points[{seen[spec.name]}]; "
                    "point names must be unique within a meter"
                )
            seen.setdefault(spec.name, j)
    if len(problems) > before:
        return None
    assert isinstance(external_id, str) and isinstance(name, str)
    return MeterSpec(external_id, name, address, instance, tuple(specs))


def _point(raw: Any, where: str, problems: list[str]) -> PointSpec | None:
    if not isinstance(raw, dict):
        problems.append(f"{where}: expected an object with name and object")
        return None
    before = len(problems)
    _unknown_keys(raw, {"name", "object", "property", "unit"}, where, problems)
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip():
        problems.append(f"{where}.name: {name!r} must be a non-empty string such as energy_kwh")
    obj = raw.get("object")
    if not isinstance(obj, str):
        problems.append(
            f"{where}.object: {obj!r} is not a BACnet object id; expected TYPE,INSTANCE such as "
            "analog-input,1"
        )
    else:
        try:
            parse_object_id(obj)
        except ValueError as err:
            problems.append(
                f"{where}.object: {obj!r} is not a BACnet object id ({err}); expected "
                "TYPE,INSTANCE such as analog-input,1"
            )
    prop = raw.get("property", "present-value")
    if not isinstance(prop, str) or not _PROPERTY_RE.match(prop):
        problems.append(f"{where}.property: {prop!r} is not a property name such as present-value")
    else:
        try:
            PointRef.parse("analog-input,1", prop)
        except ValueError:
            problems.append(
                f"{where}.property: {prop!r} is not a BACnet property; try present-value"
            )
    unit = raw.get("unit", "")
    if not isinstance(unit, str):
        problems.append(f"{where}.unit: {unit!r} must be a string such as kWh")
    if len(problems) > before:
        return None
    assert isinstance(name, str) and isinstance(obj, str)
    return PointSpec(name, obj, prop, unit)


def _unknown_keys(item: dict[str, Any], known: set[str], where: str, problems: list[str]) -> None:
    for key in sorted(set(item) - known):
        problems.append(f"{where}.{key}: unknown field; expected one of {', '.join(sorted(known))}")


def _check_unique(meters: Sequence[MeterSpec | None], problems: list[str]) -> None:
    first: dict[str, int] = {}
    for i, meter in enumerate(meters):
        if meter is None:
            continue
        if meter.external_id in first:
            problems.append(
                f"meters[{i}] ({meter.external_id}).external_id: duplicate of "
                f"meters[{first[meter.external_id]}]; every meter needs its own external_id"
            )
        first.setdefault(meter.external_id, i)
