"""Byte-level encoding of the hot services: ReadPropertyMultiple and ReadProperty answers.

bacpypes3 turns every answer into a tree of typed objects (hundreds per 20-point answer), which
profiling showed to be most of the client's CPU per request; a poll only needs numbers. So the
client decodes RPM-ACKs here straight from the bytes (and gets the array index back, which
bacpypes3 drops), and the simulator answers the common case here too, so benchmarks measure the
collector rather than the simulator. Everything unusual (errors of the whole request,
segmentation, other services) still goes through bacpypes3.

tests/test_codec.py checks both directions byte for byte against bacpypes3's own encoding.
"""

from __future__ import annotations

import dataclasses
import functools
import struct
from collections.abc import Iterable

from bacpypes3.basetypes import ErrorClass, ErrorCode  # type: ignore[import-untyped]

SERVICE_READ_PROPERTY = 12
SERVICE_READ_PROPERTY_MULTIPLE = 14
_OPENING, _CLOSING = 6, 7
_INSTANCE_BITS = 22
_INSTANCE_MASK = (1 << _INSTANCE_BITS) - 1


class DecodeError(ValueError):
    """The bytes are not the BACnet encoding expected here."""


@dataclasses.dataclass(frozen=True)
class Opaque:
    """A value this codec does not turn into a Python value (constructed, bit string, date...)."""

    data: bytes


@dataclasses.dataclass(frozen=True)
class AccessError:
    """A per-property error inside an RPM answer: error class and code, as their names."""

    error_class: str
    error_code: str


Value = None | bool | int | float | str | bytes | tuple[int, int] | Opaque
# (object type, instance, property, array index or None, value or error)
ResultItem = tuple[int, int, int, int | None, Value | AccessError]


@dataclasses.dataclass(frozen=True)
class _Tag:
    number: int
    context: bool
    kind: int  # 0 = data, _OPENING, _CLOSING
    lvt: int  # length (data) or value (application boolean)
    start: int  # first content byte
    end: int  # one past the last content byte


def _tag(data: bytes, i: int) -> _Tag:
    try:
        first = data[i]
        i += 1
        number = first >> 4
        if number == 15:
            number = data[i]
            i += 1
        context = bool(first & 0x08)
        lvt = first & 0x07
        if context and lvt in (_OPENING, _CLOSING):
            return _Tag(number, True, lvt, 0, i, i)
        if not context and number == 1:  # application boolean: the value is in the tag
            return _Tag(number, False, 0, lvt, i, i)
        if lvt == 5:
            lvt = data[i]
            i += 1
            if lvt == 254:
                lvt = int.from_bytes(data[i : i + 2], "big")
                i += 2
            elif lvt == 255:
                lvt = int.from_bytes(data[i : i + 4], "big")
                i += 4
    except IndexError as err:
        raise DecodeError("truncated tag") from err
    if i + lvt > len(data):
        raise DecodeError("truncated content")
    return _Tag(number, context, 0, lvt, i, i + lvt)


def _unsigned(data: bytes, tag: _Tag) -> int:
    return int.from_bytes(data[tag.start : tag.end], "big")


def _expect(data: bytes, i: int, number: int, kind: int) -> _Tag:
    tag = _tag(data, i)
    if not tag.context or tag.number != number or tag.kind != kind:
        raise DecodeError(f"expected context tag {number} kind {kind} at byte {i}")
    return tag


@functools.lru_cache(maxsize=256)
def _error_names(error_class: int, error_code: int) -> AccessError:
    return AccessError(str(ErrorClass(error_class)), str(ErrorCode(error_code)))


def _app_value(data: bytes, tag: _Tag) -> Value:
    raw = data[tag.start : tag.end]
    number = tag.number
    if number == 0:
        return None
    if number == 1:
        return bool(tag.lvt)
    if number in (2, 9):  # unsigned, enumerated
        return int.from_bytes(raw, "big")
    if number == 3:
        return int.from_bytes(raw, "big", signed=True)
    if number == 4 and len(raw) == 4:
        return float(struct.unpack(">f", raw)[0])
    if number == 5 and len(raw) == 8:
        return float(struct.unpack(">d", raw)[0])
    if number == 6:
        return bytes(raw)
    if number == 7 and raw:
        charset, text = raw[0], bytes(raw[1:])
        if charset == 0:
            return text.decode("utf-8", "replace")
        if charset == 4:
            return text.decode("utf-16-be", "replace")
        return text.decode("latin-1")
    if number == 12 and len(raw) == 4:
        value = int.from_bytes(raw, "big")
        return (value >> _INSTANCE_BITS, value & _INSTANCE_MASK)
    return Opaque(bytes(raw))


def _property_value(data: bytes, i: int, closing: int) -> tuple[Value, int]:
    """The value inside [closing] opening/closing tags starting at i; returns (value, next i)."""
    start = i
    depth = 0
    tags: list[_Tag] = []
    while True:
        tag = _tag(data, i)
        if tag.context and tag.kind == _CLOSING and depth == 0 and tag.number == closing:
            break
        if tag.context and tag.kind == _OPENING:
            depth += 1
        elif tag.context and tag.kind == _CLOSING:
            depth -= 1
        tags.append(tag)
        i = tag.end
    end = i
    i = tag.end
    if len(tags) == 1 and not tags[0].context:
        return _app_value(data, tags[0]), i
    return Opaque(bytes(data[start:end])), i


def decode_app_values(data: bytes) -> list[Value]:
    """A run of application-tagged values, e.g. an array sent whole (an object list where its
    length was asked for); raises DecodeError on anything constructed."""
    values: list[Value] = []
    i = 0
    while i < len(data):
        tag = _tag(data, i)
        if tag.context:
            raise DecodeError(f"context tag {tag.number} at byte {i} in a list of values")
        values.append(_app_value(data, tag))
        i = tag.end
    return values


def decode_rpm_ack(data: bytes) -> list[ResultItem]:
    """Every (object, property, index) -> value or per-property error in a ReadPropertyMultiple
    ACK's service data, in the order the device sent them."""
    results: list[ResultItem] = []
    i, size = 0, len(data)
    while i < size:
        tag = _tag(data, i)
        if not tag.context or tag.number != 0 or tag.lvt != 4:
            raise DecodeError(f"expected an object identifier at byte {i}")
        oid = _unsigned(data, tag)
        object_type, instance = oid >> _INSTANCE_BITS, oid & _INSTANCE_MASK
        i = _expect(data, tag.end, 1, _OPENING).end
        while True:
            tag = _tag(data, i)
            if tag.context and tag.number == 1 and tag.kind == _CLOSING:
                i = tag.end
                break
            if not tag.context or tag.number != 2:
                raise DecodeError(f"expected a property identifier at byte {i}")
            prop = _unsigned(data, tag)
            i = tag.end
            tag = _tag(data, i)
            index = None
            if tag.context and tag.number == 3 and tag.kind == 0:
                index = _unsigned(data, tag)
                i = tag.end
                tag = _tag(data, i)
            if tag.context and tag.number == 4 and tag.kind == _OPENING:
                value, i = _property_value(data, tag.end, 4)
                results.append((object_type, instance, prop, index, value))
            elif tag.context and tag.number == 5 and tag.kind == _OPENING:
                error_class = _tag(data, tag.end)
                error_code = _tag(data, error_class.end)
                i = _expect(data, error_code.end, 5, _CLOSING).end
                names = _error_names(_unsigned(data, error_class), _unsigned(data, error_code))
                results.append((object_type, instance, prop, index, names))
            else:
                raise DecodeError(f"expected a property value or error at byte {i}")
    return results


def decode_rp_ack(data: bytes) -> ResultItem:
    """(object type, instance, property, index, value) of a ReadProperty ACK's service data."""
    tag = _tag(data, 0)
    if not tag.context or tag.number != 0 or tag.lvt != 4:
        raise DecodeError("expected an object identifier at byte 0")
    oid = _unsigned(data, tag)
    tag = _tag(data, tag.end)
    if not tag.context or tag.number != 1 or tag.kind != 0:
        raise DecodeError("expected a property identifier")
    prop = _unsigned(data, tag)
    tag = _tag(data, tag.end)
    index = None
    if tag.context and tag.number == 2 and tag.kind == 0:
        index = _unsigned(data, tag)
        tag = _tag(data, tag.end)
    if not (tag.context and tag.number == 3 and tag.kind == _OPENING):
        raise DecodeError("expected the property value")
    value, end = _property_value(data, tag.end, 3)
    if end != len(data):
        raise DecodeError("trailing bytes after the property value")
    return (oid >> _INSTANCE_BITS, oid & _INSTANCE_MASK, prop, index, value)


# ----- encoding, for the simulator's answers


def _encode_tag(number: int, context: bool, length: int) -> bytes:
    head = (number << 4 if number < 15 else 0xF0) | (0x08 if context else 0)
    ext = bytes([number]) if number >= 15 else b""
    if length < 5:
        return bytes([head | length]) + ext
    if length < 254:
        return bytes([head | 5]) + ext + bytes([length])
    if length < 65536:
        return bytes([head | 5]) + ext + bytes([254]) + length.to_bytes(2, "big")
    return bytes([head | 5]) + ext + bytes([255]) + length.to_bytes(4, "big")


def _unsigned_bytes(value: int) -> bytes:
    return value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big")


def _context_unsigned(number: int, value: int) -> bytes:
    content = _unsigned_bytes(value)
    return _encode_tag(number, True, len(content)) + content


def _open(number: int) -> bytes:
    return bytes([(number << 4) | 0x08 | _OPENING])


def _close(number: int) -> bytes:
    return bytes([(number << 4) | 0x08 | _CLOSING])


def encode_real(value: float) -> bytes:
    """An application-tagged Real, as devices send analog present-values."""
    return b"\x44" + struct.pack(">f", value)


def encode_rpm_ack(
    results: Iterable[tuple[int, int, Iterable[tuple[int, bytes | AccessError]]]],
) -> bytes:
    """ReadPropertyMultiple-ACK service data: per object, (property, encoded application value
    or an error) in order. Error names are given as (class, code) numbers via ``error_numbers``."""
    out = bytearray()
    for object_type, instance, props in results:
        out += b"\x0c" + ((object_type << _INSTANCE_BITS) | instance).to_bytes(4, "big")
        out += _open(1)
        for prop, value in props:
            out += _context_unsigned(2, prop)
            if isinstance(value, AccessError):
                error_class, error_code = error_numbers(value)
                out += _open(5)
                out += _encode_tag(9, False, len(_unsigned_bytes(error_class)))
                out += _unsigned_bytes(error_class)
                out += _encode_tag(9, False, len(_unsigned_bytes(error_code)))
                out += _unsigned_bytes(error_code)
                out += _close(5)
            else:
                out += _open(4) + value + _close(4)
        out += _close(1)
    return bytes(out)


def error_numbers(error: AccessError) -> tuple[int, int]:
    return int(ErrorClass(error.error_class)), int(ErrorCode(error.error_code))


def decode_rpm_request(data: bytes) -> list[tuple[int, int, list[tuple[int, int | None]]]]:
    """A ReadPropertyMultiple request's service data: per object, its (property, index) list."""
    specs: list[tuple[int, int, list[tuple[int, int | None]]]] = []
    i, size = 0, len(data)
    while i < size:
        tag = _tag(data, i)
        if not tag.context or tag.number != 0 or tag.lvt != 4:
            raise DecodeError(f"expected an object identifier at byte {i}")
        oid = _unsigned(data, tag)
        i = _expect(data, tag.end, 1, _OPENING).end
        props: list[tuple[int, int | None]] = []
        while True:
            tag = _tag(data, i)
            if tag.context and tag.number == 1 and tag.kind == _CLOSING:
                i = tag.end
                break
            if not tag.context or tag.number != 0:
                raise DecodeError(f"expected a property identifier at byte {i}")
            prop = _unsigned(data, tag)
            i = tag.end
            index = None
            if i < size:
                tag = _tag(data, i)
                if tag.context and tag.number == 1 and tag.kind == 0:
                    index = _unsigned(data, tag)
                    i = tag.end
            props.append((prop, index))
        specs.append((oid >> _INSTANCE_BITS, oid & _INSTANCE_MASK, props))
    return specs
