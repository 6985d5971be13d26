"""The wire contract between appliance and central (API v1), in one place both sides import.

A readings batch is JSON (gzip-encoded when ``Content-Encoding: gzip``)::

    {"readings": [{"meter": "main-incomer", "point": "energy_kwh",
                   "ts": "2026-11-23T10:00:00Z", "value": 1234.5, "unit": "kWh"}, ...]}

sent with ``X-API-Key`` and an ``Idempotency-Key`` (the edge's batch id). Central answers
``{"accepted": n, "duplicates": n, "rejected": [{"index": i, "reason": "..."}]}``.

``POST /sync/auth`` answers ``{"site_id": 1, "site_name": "...", "tenant": "..."}``.

``GET /sync/config`` answers the site's meters in the same shape as a local meters file
(``common.meter_spec`` builds and checks it on both sides), with an ``ETag`` (``If-None-Match`` gets 304)::

    {"site_id": 1, "site_name": "Plant 1", "meters": [{"external_id": "main-incomer", "name": "...",
      "address": "127.0.0.1:47901", "device_instance": 1001,
      "points": [{"name": "energy_kwh", "object": "analog-input,1",
                  "property": "present-value", "unit": "kWh"}]}]}

``POST /sync/heartbeat`` takes the document ``common.heartbeat`` defines and checks (one type,
one validator for both sides), and answers ``{"received_at": ts, "config_etag": "..."}``.

Timestamps are ``common.timestamps``' form: UTC ISO 8601 with a ``Z``.

Every error answer is ``{"error": "what is wrong and how to fix it", "details": [...]}``.
"""

from __future__ import annotations

import gzip
import math
from datetime import datetime
from typing import Any, NamedTuple

import orjson

from common.problems import show
from common.timestamps import format_ts, parse_ts

# the routes, as central registers them and the appliance calls them
API_PREFIX = "/api/v1"
SYNC_PREFIX = API_PREFIX + "/sync"
SYNC_AUTH = SYNC_PREFIX + "/auth"
SYNC_READINGS = SYNC_PREFIX + "/readings"
SYNC_CONFIG = SYNC_PREFIX + "/config"
SYNC_HEARTBEAT = SYNC_PREFIX + "/heartbeat"

HEADER_API_KEY = "X-API-Key"
HEADER_IDEMPOTENCY_KEY = "Idempotency-Key"
MAX_IDEMPOTENCY_KEY = 200

MAX_NAME_LENGTH = 100
MAX_UNIT_LENGTH = 32
MAX_SITE_NAME_LENGTH = 200


class ConfigSite(NamedTuple):
    """Who the ``GET /sync/config`` answer is for: the appliance shows it and keeps it."""

    site_id: int | None
    site_name: str | None


def config_answer(site_id: int, site_name: str, meters: list[dict[str, Any]]) -> dict[str, Any]:
    """The body of ``GET /sync/config`` (central builds it here, the appliance reads it with
    :func:`config_site`)."""
    return {"site_id": site_id, "site_name": site_name, "meters": meters}


def config_site(body: Any) -> ConfigSite:
    """The site of a ``GET /sync/config`` answer; None for what is missing or malformed (an
    older central sends no name)."""
    if not isinstance(body, dict):
        return ConfigSite(None, None)
    site_id, name = body.get("site_id"), body.get("site_name")
    return ConfigSite(
        site_id if isinstance(site_id, int) and not isinstance(site_id, bool) else None,
        name[:MAX_SITE_NAME_LENGTH] if isinstance(name, str) and name.strip() else None,
    )


class WireReading(NamedTuple):
    """One validated reading. A NamedTuple, not a frozen dataclass: central builds one per
    reading at tens of thousands per second, and a frozen dataclass costs ~8x more to make."""

    meter: str
    point: str
    ts: datetime
    value: float
    unit: str


def reading_item(meter: str, point: str, ts: datetime, value: float, unit: str) -> dict[str, Any]:
    return {"meter": meter, "point": point, "ts": format_ts(ts), "value": value, "unit": unit}


def encode_batch(items: list[dict[str, Any]]) -> bytes:
    """gzip-compressed JSON body of a readings batch (level 1: the link is rarely the bottleneck
    for a few hundred kB, the appliance's CPU may be).

    An item's ``ts`` may be the text of :func:`reading_item` or an aware UTC datetime, which
    orjson writes in the same form (``…Z``) without a Python call per reading: for a 50,000-
    reading batch, building the items and encoding them took 0.65 s with ``format_ts`` and the
    stdlib's json, 0.11 s this way. orjson writes NaN as null, so non-finite values are refused
    here first (the ledger has quarantined them already; this is the second guard)."""
    for item in items:
        # anything else is central's to refuse, item by item (its tests send such batches)
        value = item.get("value") if type(item) is dict else None
        if type(value) is float and not math.isfinite(value):
            raise ValueError(f"value {value!r} is not a finite number; the wire carries none")
    raw = orjson.dumps({"readings": items}, option=orjson.OPT_UTC_Z)
    return gzip.compress(raw, compresslevel=1)


def _name(item: dict[str, Any], key: str, limit: int, required: bool = True) -> str:
    value = item.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value.strip()):
        raise ValueError(f"{key}: expected a non-empty string, got {show(value)}")
    if len(value) > limit:
        raise ValueError(f"{key}: longer than {limit} characters")
    return value


def parse_reading(item: Any) -> WireReading:
    """Validate one batch item; ValueError says which field is wrong and what is expected.

    The common, valid item takes a fast path of exact type checks (JSON only ever yields exact
    ``str``/``int``/``float``/``dict``); anything else goes through the field-by-field checks
    below, which produce the error message. Both accept exactly the same items.
    """
    if type(item) is dict:
        meter = item.get("meter")
        point = item.get("point")
        ts_text = item.get("ts")
        value: Any = item.get("value")
        unit = item.get("unit")
        value_type = type(value)
        if (
            (value_type is float or value_type is int)
            and type(meter) is str
            and type(point) is str
            and type(ts_text) is str
            and (unit is None or (type(unit) is str and len(unit) <= MAX_UNIT_LENGTH))
            and 0 < len(meter) <= MAX_NAME_LENGTH
            and 0 < len(point) <= MAX_NAME_LENGTH
            and not meter.isspace()
            and not point.isspace()
            and math.isfinite(value)
        ):
            try:
                ts = datetime.fromisoformat(ts_text)
            except ValueError:
                pass
            else:
                if ts.tzinfo is not None:
                    return WireReading(meter, point, ts, float(value), unit or "")
    return _parse_reading_checked(item)


def _parse_reading_checked(item: Any) -> WireReading:
    if not isinstance(item, dict):
        raise ValueError(
            f"expected an object with meter, point, ts, value, unit; got {type(item).__name__}"
        )
    value = item.get("value")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"value: expected a number, got {show(value)}")
    if not math.isfinite(value):
        raise ValueError(f"value: expected a finite number, got {show(value)}")
    return WireReading(
        meter=_name(item, "meter", MAX_NAME_LENGTH),
        point=_name(item, "point", MAX_NAME_LENGTH),
        ts=parse_ts(item.get("ts")),
        value=float(value),
        unit=_name(item, "unit", MAX_UNIT_LENGTH, required=False),
    )


class BatchAnswer(NamedTuple):
    """Central's answer to a readings batch, checked: the counts add up to what was sent."""

    accepted: int
    duplicates: int
    rejected: dict[int, str]  # index in the batch -> central's reason


def parse_batch_answer(body: Any, sent: int) -> BatchAnswer:
    """ValueError when the answer is not one central gives for a batch of ``sent`` items."""
    if not isinstance(body, dict):
        raise ValueError(f"answer is not an object: {body!r:.200}")
    accepted, duplicates = body.get("accepted"), body.get("duplicates")
    if not isinstance(accepted, int) or not isinstance(duplicates, int):
        raise ValueError(f"answer lacks accepted/duplicates counts: {body!r:.200}")
    rejected: dict[int, str] = {}
    for item in body.get("rejected") or []:
        index = item.get("index") if isinstance(item, dict) else None
        if not isinstance(index, int) or not 0 <= index < sent:
            raise ValueError(f"answer names an item outside the batch: {item!r:.200}")
        rejected[index] = str(item.get("reason") or "rejected by central")
    if accepted + duplicates + len(rejected) != sent:
        raise ValueError(
            f"answer counts {accepted}+{duplicates}+{len(rejected)} do not add up to {sent} sent"
        )
    return BatchAnswer(accepted, duplicates, rejected)


def refused_items(error_body: Any, sent: int) -> dict[int, str]:
    """Items a 4xx error answer names by index (``details: [{"index": i, "reason": ...}]``)."""
    out: dict[int, str] = {}
    details = error_body.get("details") if isinstance(error_body, dict) else None
    for item in details or []:
        if isinstance(item, dict) and isinstance(item.get("index"), int):
            index = item["index"]
            if 0 <= index < sent:
                out[index] = str(item.get("reason") or item.get("error") or item)
    return out
