"""The sync API v1 that appliances call (contract in ``common.wire``).

Every endpoint needs ``X-API-Key``; the rate limits count per site: requests to the whole API,
and readings sent (``central.sync_budget``). A refused request writes
nothing: readings are validated item by item, and a batch either commits with its stored
answer or not at all.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request

from central import health_state, metrics, sync_budget
from central.body import json_body, json_object
from central.database import request_connection
from central.errors import ApiError
from central.extensions import ingestor
from central.ingest import AcceptWindow
from central.sync_auth import current_site, stored_batch_answer
from common import wire
from common.heartbeat import MAX_HEARTBEAT_BYTES, check_heartbeat
from common.meter_spec import MeterSpec, PointSpec, meters_document
from common.timestamps import format_ts
from common.wire import HEADER_IDEMPOTENCY_KEY, MAX_IDEMPOTENCY_KEY

bp = Blueprint("sync", __name__)
# one budget per site for every sync endpoint together (a per-route limit would multiply it)
sync_budget.init_blueprint(bp)


@bp.post(wire.SYNC_AUTH)
def auth() -> Response:
    site = current_site()
    return jsonify(
        {
            "site_id": site.site_id,
            "site_name": site.site_name,
            "tenant": site.tenant_name,
            "key_prefix": site.key_prefix,
            "key_expires_at": format_ts(site.key_expires_at) if site.key_expires_at else None,
        }
    )


def _idempotency_key() -> str:
    key = (request.headers.get(HEADER_IDEMPOTENCY_KEY) or "").strip()
    if not key:
        raise ApiError(
            400, f"missing {HEADER_IDEMPOTENCY_KEY} header; send the batch's id so a retry is safe"
        )
    if len(key) > MAX_IDEMPOTENCY_KEY:
        raise ApiError(
            400, f"{HEADER_IDEMPOTENCY_KEY}: longer than {MAX_IDEMPOTENCY_KEY} characters"
        )
    return key


@bp.post(wire.SYNC_READINGS)
def readings() -> Response:
    site = current_site()
    key = _idempotency_key()
    # a replay is answered before the body is even read, from the authentication's round trip
    stored = stored_batch_answer(key)
    if stored is not None:
        metrics.INGEST_BATCHES.labels("replayed").inc()
        return _batch_response(stored, replayed=True)
    sync_budget.check_room()  # a spent budget refuses before the body is read
    body = json_body(request, int(current_app.config["MAX_BATCH_BYTES"]))
    if not isinstance(body, dict) or "readings" not in body:
        raise ApiError(
            422, 'body: expected a JSON object {"readings": [...]}', [{"field": "readings"}]
        )
    items = body["readings"]
    if not isinstance(items, list):
        raise ApiError(
            422,
            f"readings: expected a list of readings, got {type(items).__name__}",
            [{"field": "readings"}],
        )
    limit = int(current_app.config["MAX_BATCH_READINGS"])
    if len(items) > limit:
        raise ApiError(413, f"readings: {len(items)} items; at most {limit} per batch")
    sync_budget.charge(site.site_id, len(items))
    window = AcceptWindow(
        past=timedelta(days=int(current_app.config["ACCEPT_PAST_DAYS"])),
        future=timedelta(hours=float(current_app.config["ACCEPT_FUTURE_HOURS"])),
    )
    answer, replayed = ingestor.write_batch(request_connection(), site, key, items, window)
    return _batch_response(answer, replayed)


def _batch_response(answer: dict[str, Any], replayed: bool) -> Response:
    response = jsonify(answer)
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response


@bp.get(wire.SYNC_CONFIG)
def config() -> Response:
    site = current_site()
    etag = f"cfg-{site.site_id}-{site.config_version}"
    if request.if_none_match.contains(etag):
        response = Response(status=304)
        response.set_etag(etag)
        return response
    rows = (
        request_connection()
        .execute(
            """SELECT m.id, m.external_id, m.name, m.address, m.device_instance, m.cov,
                      p.name, p.object_type, p.object_instance, p.property, p.unit
               FROM meters m LEFT JOIN meter_points p ON p.meter_id = m.id AND p.active
               WHERE m.site_id = %s AND m.active ORDER BY m.external_id, p.name""",
            (site.site_id,),
        )
        .fetchall()
    )
    meters: dict[int, tuple[MeterSpec, list[PointSpec]]] = {}
    for r in rows:
        _, points = meters.setdefault(r[0], (MeterSpec(r[1], r[2], r[3], r[4], (), r[5]), []))
        if r[6] is not None:
            points.append(PointSpec(r[6], f"{r[7]},{r[8]}", r[9], r[10]))
    document = meters_document(
        dataclasses.replace(meter, points=tuple(points)) for meter, points in meters.values()
    )
    response = jsonify(wire.config_answer(site.site_id, site.site_name, document))
    response.set_etag(etag)
    return response


@bp.post(wire.SYNC_HEARTBEAT)
def heartbeat() -> Response:
    site = current_site()
    beat, problems = check_heartbeat(json_object(request, MAX_HEARTBEAT_BYTES))
    if beat is None:
        raise ApiError(
            422,
            "heartbeat: " + "; ".join(f"{field}: {reason}" for field, reason in problems),
            [{"field": field, "reason": reason} for field, reason in problems],
        )
    # what is stored is the checked document, never the body as sent
    now = datetime.now(UTC)
    conn = request_connection()
    # pipelined: the transaction's statements go out together, one round trip instead of six
    with conn.pipeline(), conn.transaction():
        health_state.store(conn, site.site_id, beat, now)
    metrics.HEARTBEATS.inc()
    return jsonify(
        {
            "received_at": format_ts(now),
            "config_etag": f"cfg-{site.site_id}-{site.config_version}",
        }
    )
