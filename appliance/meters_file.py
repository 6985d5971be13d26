"""The local meters file: what ``meters load`` reads and discovery writes.

JSON (no extra dependency), a list of meters.  Every problem is reported at once, each naming the
meter, the field and the fix, because the reader is an installer on site editing by hand.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from common.meter_spec import MeterSpec, check_meter, meters_document

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
    return json.dumps(meters_document(meters), indent=2, ensure_ascii=False) + "\n"


def _meter(item: Any, index: int, problems: list[str]) -> MeterSpec | None:
    where = f"meters[{index}]"
    if isinstance(item, dict) and isinstance(item.get("external_id"), str):
        where += f" ({item['external_id']})"
    spec, found = check_meter(item)
    problems += [
        f"{where}.{field}: {reason}" if field else f"{where}: {reason}" for field, reason in found
    ]
    return spec


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
