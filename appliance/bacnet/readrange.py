"""Byte-level ReadRange by time of a TrendLog's log-buffer: the request and its answer.

Backfill reads days of records per point; decoding each record through bacpypes3's typed
objects would cost more than the whole transfer, and bacpypes3 has no server side for ReadRange
at all (its ``do_ReadRangeRequest`` raises NotImplementedError). So the client and the simulator
both use these functions; tests/test_readrange.py checks them against bacpypes3's own types.

BACnet timestamps carry no zone: they are the device's local time. Records are read and written
here as UTC, and the client applies the device's UTC offset.
"""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from appliance.bacnet.codec import (
    _CLOSING,
    _OPENING,
    DecodeError,
    _close,
    _context_unsigned,
    _encode_tag,
    _expect,
    _open,
    _tag,
    _unsigned,
)

SERVICE_READ_RANGE = 26
OBJECT_TREND_LOG = 20
PROPERTY_LOG_BUFFER = 131
PROPERTY_LOG_DEVICE_OBJECT_PROPERTY = 132
_INSTANCE_BITS = 22
_INSTANCE_MASK = (1 << _INSTANCE_BITS) - 1
_APP_SIGNED, _APP_DATE, _APP_TIME = 3, 10, 11
# one record as the simulator encodes it: timestamp (12), real datum (7), status flags (3)
RECORD_BYTES = 22
ACK_OVERHEAD = 24  # object, property, result flags, item count, first sequence, open/close


@dataclasses.dataclass(frozen=True)
class RangeAnswer:
    """One ReadRange-ACK: its numeric records (others, e.g. log-status records, are skipped),
    and whether the device has more after them."""

    records: list[tuple[datetime, float]]
    more: bool
    item_count: int


def _oid(object_type: int, instance: int) -> bytes:
    return ((object_type << _INSTANCE_BITS) | instance).to_bytes(4, "big")


def _date_time(ts: datetime) -> bytes:
    ts = ts.astimezone(UTC)
    date = bytes([ts.year - 1900, ts.month, ts.day, ts.isoweekday()])
    time = bytes([ts.hour, ts.minute, ts.second, ts.microsecond // 10_000])
    return bytes([(_APP_DATE << 4) | 4]) + date + bytes([(_APP_TIME << 4) | 4]) + time


def _read_date_time(data: bytes, i: int) -> tuple[datetime, int]:
    date = _tag(data, i)
    time = _tag(data, date.end)
    if date.context or date.number != _APP_DATE or time.context or time.number != _APP_TIME:
        raise DecodeError(f"expected a date and a time at byte {i}")
    year, month, day, _ = data[date.start : date.end]
    hour, minute, second, hundredths = data[time.start : time.end]
    if 255 in (year, month, day, hour, minute) or month > 12:
        raise DecodeError("a timestamp with unspecified fields")
    second = 0 if second == 255 else second
    hundredths = 0 if hundredths == 255 else hundredths
    try:
        ts = datetime(year + 1900, month, day, hour, minute, second, hundredths * 10_000, UTC)
    except ValueError as err:
        raise DecodeError(f"bad timestamp: {err}") from err
    return ts, time.end


def encode_request(instance: int, since: datetime, count: int) -> bytes:
    """ReadRange of trend-log ``instance``'s log-buffer: ``count`` records after ``since``."""
    raw_count = count.to_bytes(4, "big", signed=True).lstrip(b"\x00") or b"\x00"
    if raw_count[0] & 0x80:
        raw_count = b"\x00" + raw_count
    return (
        _encode_tag(0, True, 4)
        + _oid(OBJECT_TREND_LOG, instance)
        + _context_unsigned(1, PROPERTY_LOG_BUFFER)
        + _open(7)
        + _date_time(since)
        + _encode_tag(_APP_SIGNED, False, len(raw_count))
        + raw_count
        + _close(7)
    )


def decode_request(data: bytes) -> tuple[int, int, int, datetime, int]:
    """(object type, instance, property, reference time, count) of a ReadRange by time."""
    tag = _tag(data, 0)
    if not tag.context or tag.number != 0 or tag.lvt != 4:
        raise DecodeError("expected an object identifier")
    oid = _unsigned(data, tag)
    tag = _tag(data, tag.end)
    if not tag.context or tag.number != 1:
        raise DecodeError("expected a property identifier")
    prop = _unsigned(data, tag)
    tag = _tag(data, tag.end)
    if tag.context and tag.number == 2 and tag.kind == 0:
        tag = _tag(data, tag.end)  # an array index: log-buffer is no array, ignored
    if not (tag.context and tag.number == 7 and tag.kind == _OPENING):
        raise DecodeError("only ReadRange by time is served")
    since, i = _read_date_time(data, tag.end)
    tag = _tag(data, i)
    if tag.context or tag.number != _APP_SIGNED:
        raise DecodeError("expected the count")
    count = int.from_bytes(data[tag.start : tag.end], "big", signed=True)
    _expect(data, tag.end, 7, _CLOSING)
    return oid >> _INSTANCE_BITS, oid & _INSTANCE_MASK, prop, since, count


def encode_ack(
    instance: int,
    records: Sequence[tuple[datetime, float]],
    *,
    first_item: bool,
    last_item: bool,
    more: bool,
    first_sequence: int,
) -> bytes:
    flags = (0x80 if first_item else 0) | (0x40 if last_item else 0) | (0x20 if more else 0)
    out = bytearray(_encode_tag(0, True, 4) + _oid(OBJECT_TREND_LOG, instance))
    out += _context_unsigned(1, PROPERTY_LOG_BUFFER)
    out += _encode_tag(3, True, 2) + bytes([5, flags])
    out += _context_unsigned(4, len(records))
    out += _open(5)
    for ts, value in records:
        out += _open(0) + _date_time(ts) + _close(0)
        out += _open(1) + _encode_tag(2, True, 4) + struct.pack(">f", value) + _close(1)
        out += _encode_tag(2, True, 2) + b"\x04\x00"
    out += _close(5)
    if records:
        out += _context_unsigned(6, first_sequence)
    return bytes(out)


def decode_ack(data: bytes) -> RangeAnswer:
    tag = _expect(data, 0, 0, 0)
    tag = _expect(data, tag.end, 1, 0)
    tag = _tag(data, tag.end)
    if tag.context and tag.number == 2 and tag.kind == 0:
        tag = _tag(data, tag.end)
    if not (tag.context and tag.number == 3 and tag.lvt >= 2):
        raise DecodeError("expected the result flags")
    more = bool(data[tag.start + 1] & 0x20)
    tag = _expect(data, tag.end, 4, 0)
    item_count = _unsigned(data, tag)
    i = _expect(data, tag.end, 5, _OPENING).end
    records: list[tuple[datetime, float]] = []
    while True:
        tag = _tag(data, i)
        if tag.context and tag.number == 5 and tag.kind == _CLOSING:
            break
        if not (tag.context and tag.number == 0 and tag.kind == _OPENING):
            raise DecodeError(f"expected a log record at byte {i}")
        ts, i = _read_date_time(data, tag.end)
        i = _expect(data, i, 0, _CLOSING).end
        i = _expect(data, i, 1, _OPENING).end
        datum = _tag(data, i)
        value: float | None = None
        if datum.context and datum.kind == 0:
            raw = data[datum.start : datum.end]
            if datum.number == 2 and len(raw) == 4:  # real
                value = float(struct.unpack(">f", raw)[0])
            elif datum.number == 4:  # unsigned
                value = float(int.from_bytes(raw, "big"))
            elif datum.number == 5:  # signed
                value = float(int.from_bytes(raw, "big", signed=True))
        # skip whatever the datum is (a log status, a failure, any) up to its closing tag
        depth, j = 0, i
        while True:
            inner = _tag(data, j)
            if inner.context and inner.kind == _CLOSING and depth == 0 and inner.number == 1:
                break
            if inner.context and inner.kind == _OPENING:
                depth += 1
            elif inner.context and inner.kind == _CLOSING:
                depth -= 1
            j = inner.end
        i = inner.end
        tag = _tag(data, i)
        if tag.context and tag.number == 2 and tag.kind == 0:  # status flags
            i = tag.end
        if value is not None:
            records.append((ts, value))
    return RangeAnswer(records, more, item_count)


def decode_object_property_reference(data: bytes) -> tuple[int, int, int]:
    """(object type, instance, property) of a BACnetDeviceObjectPropertyReference, as a trend
    log's log-device-object-property holds it."""
    tag = _expect(data, 0, 0, 0)
    oid = _unsigned(data, tag)
    tag = _expect(data, tag.end, 1, 0)
    return oid >> _INSTANCE_BITS, oid & _INSTANCE_MASK, _unsigned(data, tag)


def device_time_to_utc(ts: datetime, utc_offset_min: int) -> datetime:
    """A device timestamp read as UTC, corrected by the device's utc-offset property (minutes
    to add to local time to get UTC, per BACnet)."""
    return ts + timedelta(minutes=utc_offset_min)
