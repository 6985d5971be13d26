"""Meters and their data points, as operators define them (central is the source of truth).

A meter is never deleted, only deactivated: its readings keep pointing at its data points, and
an appliance that pulls the config deactivates it locally. Every change bumps the site's
``config_version`` (by trigger), which appliances see as a new ETag.
"""

from __future__ import annotations

import re
from typing import Any

import psycopg

from central.errors import ApiError
from central.sites import audit
from common.wire import MAX_NAME_LENGTH, MAX_UNIT_LENGTH

OBJECT_RE = re.compile(r"^([a-z][a-z-]*),(\d{1,7})$")
MAX_INSTANCE = 4194303


def _text(
    body: dict[str, Any],
    key: str,
    limit: int,
    problems: list[dict[str, str]],
    where: str,
    *,
    required: bool = True,
) -> str:
    value = body.get(key, None if required else "")
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value.strip()) or len(value) > limit:
        problems.append(
            {
                "field": f"{where}{key}",
                "reason": f"expected text of 1 to {limit} characters, got {value!r}",
            }
        )
        return ""
    return value.strip()


def parse_meter(body: Any) -> dict[str, Any]:
    """Check a meter definition; ApiError 422 lists every bad field."""
    if not isinstance(body, dict):
        raise ApiError(422, f"body: expected a meter object, got {type(body).__name__}")
    problems: list[dict[str, str]] = []
    meter: dict[str, Any] = {
        "external_id": _text(body, "external_id", MAX_NAME_LENGTH, problems, ""),
        "name": _text(body, "name", 200, problems, "", required=False),
    }
    address = body.get("address")
    if address is not None and (not isinstance(address, str) or len(address) > 200):
        problems.append(
            {"field": "address", "reason": f"expected host:port text or null, got {address!r}"}
        )
    meter["address"] = address
    instance = body.get("device_instance")
    if instance is not None and (
        isinstance(instance, bool)
        or not isinstance(instance, int)
        or not 0 <= instance <= MAX_INSTANCE
    ):
        problems.append(
            {
                "field": "device_instance",
                "reason": f"expected 0 to {MAX_INSTANCE} or null, got {instance!r}",
            }
        )
    meter["device_instance"] = instance
    points = body.get("points", [])
    parsed: list[dict[str, Any]] = []
    if not isinstance(points, list):
        problems.append({"field": "points", "reason": "expected a list of data points"})
        points = []
    for i, point in enumerate(points):
        where = f"points[{i}]."
        if not isinstance(point, dict):
            problems.append({"field": f"points[{i}]", "reason": "expected an object"})
            continue
        obj = point.get("object")
        match = OBJECT_RE.match(obj) if isinstance(obj, str) else None
        if match is None or int(match.group(2)) > MAX_INSTANCE:
            problems.append(
                {
                    "field": f"{where}object",
                    "reason": f"expected 'object-type,instance' such as 'analog-input,1', got {obj!r}",
                }
            )
        parsed.append(
            {
                "name": _text(point, "name", MAX_NAME_LENGTH, problems, where),
                "object_type": match.group(1) if match else "",
                "object_instance": int(match.group(2)) if match else 0,
                "property": _text(point, "property", 100, problems, where, required=False)
                or "present-value",
                "unit": _text(point, "unit", MAX_UNIT_LENGTH, problems, where, required=False),
            }
        )
    names = [p["name"] for p in parsed]
    if len(set(names)) != len(names):
        problems.append(
            {"field": "points", "reason": "data point names must be unique within a meter"}
        )
    if problems:
        raise ApiError(
            422, "meter: " + "; ".join(f"{p['field']}: {p['reason']}" for p in problems), problems
        )
    meter["points"] = parsed
    return meter


def meter_json(conn: psycopg.Connection[Any], meter_id: int) -> dict[str, Any]:
    row = conn.execute(
        "SELECT id, site_id, external_id, name, address, device_instance, active, updated_at FROM meters WHERE id = %s",
        (meter_id,),
    ).fetchone()
    assert row is not None
    points = conn.execute(
        """SELECT id, name, object_type, object_instance, property, unit, active
           FROM meter_points WHERE meter_id = %s ORDER BY name""",
        (meter_id,),
    ).fetchall()
    return {
        "id": row[0],
        "site_id": row[1],
        "external_id": row[2],
        "name": row[3],
        "address": row[4],
        "device_instance": row[5],
        "active": row[6],
        "updated_at": row[7].isoformat(),
        "points": [
            {
                "id": p[0],
                "name": p[1],
                "object": f"{p[2]},{p[3]}",
                "property": p[4],
                "unit": p[5],
                "active": p[6],
            }
            for p in points
        ],
    }


def _write_points(
    conn: psycopg.Connection[Any], meter_id: int, points: list[dict[str, Any]]
) -> None:
    for p in points:
        conn.execute(
            """INSERT INTO meter_points (meter_id, name, object_type, object_instance, property, unit)
               VALUES (%s, %s, %s, %s, %s, %s)
               ON CONFLICT (meter_id, name) DO UPDATE SET object_type = EXCLUDED.object_type,
                   object_instance = EXCLUDED.object_instance, property = EXCLUDED.property,
                   unit = EXCLUDED.unit, active = true""",
            (meter_id, p["name"], p["object_type"], p["object_instance"], p["property"], p["unit"]),
        )
    conn.execute(
        "UPDATE meter_points SET active = false WHERE meter_id = %s AND active AND NOT name = ANY(%s)",
        (meter_id, [p["name"] for p in points]),
    )


def create_meter(
    conn: psycopg.Connection[Any], site_id: int, tenant_id: int, meter: dict[str, Any], actor: str
) -> int:
    row = conn.execute(
        """INSERT INTO meters (site_id, external_id, name, address, device_instance)
           VALUES (%s, %s, %s, %s, %s) ON CONFLICT (site_id, external_id) DO NOTHING RETURNING id""",
        (site_id, meter["external_id"], meter["name"], meter["address"], meter["device_instance"]),
    ).fetchone()
    if row is None:
        raise ApiError(
            409,
            f"site {site_id} already has a meter {meter['external_id']!r}; use PUT to change it",
        )
    _write_points(conn, row[0], meter["points"])
    audit(
        conn,
        tenant_id,
        actor,
        "meter.create",
        ("meter", row[0]),
        details={"site_id": site_id, "external_id": meter["external_id"]},
    )
    return int(row[0])


def update_meter(
    conn: psycopg.Connection[Any], meter_id: int, tenant_id: int, meter: dict[str, Any], actor: str
) -> None:
    try:
        conn.execute(
            """UPDATE meters SET external_id = %s, name = %s, address = %s, device_instance = %s,
                   active = true, updated_at = now() WHERE id = %s""",
            (
                meter["external_id"],
                meter["name"],
                meter["address"],
                meter["device_instance"],
                meter_id,
            ),
        )
    except psycopg.errors.UniqueViolation:
        raise ApiError(
            409, f"the site already has another meter {meter['external_id']!r}"
        ) from None
    _write_points(conn, meter_id, meter["points"])
    audit(
        conn,
        tenant_id,
        actor,
        "meter.update",
        ("meter", meter_id),
        details={"external_id": meter["external_id"]},
    )


def deactivate_meter(
    conn: psycopg.Connection[Any], meter_id: int, tenant_id: int, actor: str
) -> None:
    conn.execute("UPDATE meters SET active = false, updated_at = now() WHERE id = %s", (meter_id,))
    audit(conn, tenant_id, actor, "meter.deactivate", ("meter", meter_id))


def meter_tenant(conn: psycopg.Connection[Any], meter_id: int) -> int | None:
    row = conn.execute(
        "SELECT s.tenant_id FROM meters m JOIN sites s ON s.id = m.site_id WHERE m.id = %s",
        (meter_id,),
    ).fetchone()
    return None if row is None else int(row[0])
