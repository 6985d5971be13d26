"""The sync API v1 that appliances call (contract in ``common.wire``).

Every endpoint needs ``X-API-Key``; the rate limit counts per site. A refused request writes
nothing: readings are validated item by item, and a batch either commits with its stored
answer or not at all.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request
from psycopg.types.json import Jsonb

from central import metrics
from central.body import json_body, json_object
from central.database import pool
from central.errors import ApiError
from central.extensions import ingestor, limiter, rate_limit_value
from central.sync_auth import current_site
from common.wire import HEADER_IDEMPOTENCY_KEY

bp = Blueprint("sync", __name__, url_prefix="/api/v1/sync")
limiter.limit(rate_limit_value)(bp)

MAX_IDEMPOTENCY_KEY = 200


@bp.post("/auth")
def auth() -> Response:
    site = current_site()
    return jsonify(
        {
            "site_id": site.site_id,
            "site_name": site.site_name,
            "tenant": site.tenant_name,
            "key_prefix": site.key_prefix,
            "key_expires_at": site.key_expires_at.isoformat() if site.key_expires_at else None,
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


@bp.post("/readings")
def readings() -> Response:
    site = current_site()
    key = _idempotency_key()
    # a replay is answered before the body is even read: it costs one index probe
    with pool().connection() as conn:
        stored = ingestor.stored_answer(conn, site.site_id, key)
    if stored is not None:
        metrics.INGEST_BATCHES.labels("replayed").inc()
        return _batch_response(stored, replayed=True)
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
    answer, replayed = ingestor.write_batch(pool(), site, key, items)
    return _batch_response(answer, replayed)


def _batch_response(answer: dict[str, Any], replayed: bool) -> Response:
    response = jsonify(answer)
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response


@bp.get("/config")
def config() -> Response:
    site = current_site()
    etag = f"cfg-{site.site_id}-{site.config_version}"
    if request.if_none_match.contains(etag):
        response = Response(status=304)
        response.set_etag(etag)
        return response
    with pool().connection() as conn:
        rows = conn.execute(
            """SELECT m.id, m.external_id, m.name, m.address, m.device_instance,
                      p.name, p.object_type, p.object_instance, p.property, p.unit
               FROM meters m LEFT JOIN meter_points p ON p.meter_id = m.id AND p.active
               WHERE m.site_id = %s AND m.active ORDER BY m.external_id, p.name""",
            (site.site_id,),
        ).fetchall()
    meters: dict[int, dict[str, Any]] = {}
    for r in rows:
        meter = meters.setdefault(
            r[0],
            {
                "external_id": r[1],
                "name": r[2],
                "address": r[3],
                "device_instance": r[4],
                "points": [],
            },
        )
        if r[5] is not None:
            meter["points"].append(
                {"name": r[5], "object": f"{r[6]},{r[7]}", "property": r[8], "unit": r[9]}
            )
    response = jsonify({"site_id": site.site_id, "meters": list(meters.values())})
    response.set_etag(etag)
    return response


def _check_heartbeat(body: dict[str, Any]) -> list[dict[str, str]]:
    problems: list[dict[str, str]] = []

    def bad(field: str, expected: str) -> None:
        problems.append({"field": field, "reason": f"expected {expected}, got {body.get(field)!r}"})

    for name in ("backlog", "dropped_readings"):
        value = body.get(name, 0)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            bad(name, "a whole number of at least 0")
    age = body.get("oldest_unsynced_age_s")
    if age is not None and (
        isinstance(age, bool) or not isinstance(age, int | float) or not math.isfinite(age)
    ):
        bad("oldest_unsynced_age_s", "a number of seconds or null")
    if not isinstance(body.get("versions", {}), dict):
        bad("versions", "an object of component versions")
    for name in ("collection_paused", "upload_paused"):
        if not isinstance(body.get(name, False), bool):
            bad(name, "true or false")
    meters = body.get("meters", [])
    if not isinstance(meters, list) or not all(isinstance(m, dict) for m in meters):
        bad("meters", "a list of meter status objects")
    return problems


@bp.post("/heartbeat")
def heartbeat() -> Response:
    site = current_site()
    body = json_object(request, int(current_app.config["MAX_BATCH_BYTES"]))
    problems = _check_heartbeat(body)
    if problems:
        raise ApiError(
            422,
            "heartbeat: " + "; ".join(f"{p['field']}: {p['reason']}" for p in problems),
            problems,
        )
    now = datetime.now(UTC)
    with pool().connection() as conn, conn.transaction():
        conn.execute(
            "INSERT INTO heartbeats (site_id, received_at, body) VALUES (%s, %s, %s)",
            (site.site_id, now, Jsonb(body)),
        )
        conn.execute(
            "UPDATE sites SET last_heartbeat_at = %s, last_status = %s WHERE id = %s",
            (now, Jsonb(body), site.site_id),
        )
    metrics.HEARTBEATS.inc()
    return jsonify(
        {
            "received_at": now.isoformat().replace("+00:00", "Z"),
            "config_etag": f"cfg-{site.site_id}-{site.config_version}",
        }
    )
