"""How many points fit in one ReadPropertyMultiple, and turning answers into numbers.

A device without segmentation aborts any answer larger than its max APDU, and the answer size is
only known after the fact; so requests are planned from a conservative per-property estimate of
the encoded answer (BACnet tags are small and regular, values are not: a present-value may be a
Double, a name any length).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from bacpypes3.basetypes import PropertyIdentifier  # type: ignore[import-untyped]
from bacpypes3.primitivedata import TagClass  # type: ignore[import-untyped]

if TYPE_CHECKING:
    from appliance.bacnet.device import PointRef

REQUEST_HEADER = 4  # confirmed-request APCI incl. service choice
ACK_HEADER = 3  # complex-ack APCI incl. service choice
OBJECT_ID = 5  # context tag + 4 bytes
OPEN_CLOSE = 2

# Upper bounds of the encoded value (tag + content) for properties we read; anything else gets
# DEFAULT_VALUE.  Strings are capped by what small devices actually send.
_VALUE_BYTES = {
    "present-value": 10,  # Double is the largest numeric encoding
    "units": 3,
    "status-flags": 3,
    "max-apdu-length-accepted": 5,
    "segmentation-supported": 2,
    "vendor-identifier": 3,
    "object-identifier": 5,
    "object-list": 5,  # with an index: one object identifier
    "object-name": 66,
    "vendor-name": 66,
    "description": 66,
}
DEFAULT_VALUE = 24
ERROR_BYTES = 7  # opening tag, error class, error code, closing tag


def _unsigned_len(value: int) -> int:
    return 1 if value < 0x100 else 2 if value < 0x10000 else 3 if value < 0x1000000 else 4


@functools.lru_cache(maxsize=4096)
def _property_bytes(ref: PointRef) -> int:
    size = 1 + _unsigned_len(int(PropertyIdentifier(ref.prop)))
    if ref.index is not None:
        size += 1 + _unsigned_len(ref.index)
    return size


def _objects(refs: Iterable[PointRef]) -> int:
    return len({ref.object_id for ref in refs})


def request_bytes(refs: Sequence[PointRef]) -> int:
    """Encoded size of a ReadPropertyMultiple request for these points."""
    per_object = OBJECT_ID + OPEN_CLOSE
    return REQUEST_HEADER + per_object * _objects(refs) + sum(_property_bytes(r) for r in refs)


def response_bytes(refs: Sequence[PointRef]) -> int:
    """Conservative encoded size of the ReadPropertyMultiple-ACK for these points."""
    total = ACK_HEADER + (OBJECT_ID + OPEN_CLOSE) * _objects(refs)
    for ref in refs:
        value = _VALUE_BYTES.get(ref.prop, DEFAULT_VALUE) + OPEN_CLOSE
        total += _property_bytes(ref) + max(value, ERROR_BYTES)
    return total


def plan_chunks(
    refs: Sequence[PointRef], request_budget: int, answer_budget: int, max_points: int
) -> list[list[PointRef]]:
    """Greedy split, keeping each object's properties together where they fit, so that every
    request and its expected answer stay within the budgets.  A point too big on its own still
    gets its own chunk: the caller falls back to ReadProperty if the device aborts it."""
    ordered = sorted(refs, key=lambda r: (r.object_type, r.instance))
    chunks: list[list[PointRef]] = []
    current: list[PointRef] = []
    for ref in ordered:
        candidate = [*current, ref]
        fits = (
            len(candidate) <= max_points
            and request_bytes(candidate) <= request_budget
            and response_bytes(candidate) <= answer_budget
        )
        if current and not fits:
            chunks.append(current)
            candidate = [ref]
        current = candidate
    if current:
        chunks.append(current)
    return chunks


def decode_any(value: Any) -> Any:
    """Decode a property value carried as an ``Any`` by its application tag, without needing the
    object's class (vendor objects, or present-values that are not Real)."""
    tags = list(value.tagList) if getattr(value, "tagList", None) is not None else []
    if len(tags) >= 2 and tags[0].tag_class == TagClass.opening:
        tags = tags[1:-1]  # the property-value context wrapper
    if not tags:
        return value
    if len(tags) == 1 and tags[0].tag_class == TagClass.application:
        return tags[0].app_to_object()
    return value
