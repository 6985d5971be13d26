"""Meters and their data points, as operators define them (central is the source of truth).

A meter is never deleted, only deactivated: its readings keep pointing at its data points, and
an appliance that pulls the config deactivates it locally. Every change bumps the site's
``config_version`` (by trigger), which appliances see as a new ETag.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.rows import dict_row

from central import audit
from central.errors import ApiError
from common.meter_spec import check_meter


def parse_meter(body: Any) -> dict[str, Any]:
    """Check a meter definition with the checks every appliance applies to the config it pulls
    (``common.meter_spec``), so what central accepts, appliances can poll; ApiError 422 lists
    every bad field. Fields it does not know are ignored (a client may send back what it got)."""
    if not isinstance(body, dict):
        raise ApiError(422, f"body: expected a meter object, got {type(body).__name__}")
    spec, problems = check_meter(body, unknown_fields=False)
    if spec is None:
        details = [{"field": field or "meter", "reason": reason} for field, reason in problems]
        raise ApiError(
            422, "meter: " + "; ".join(f"{d['field']}: {d['reason']}" for d in details), details
        )
    return {
        "external_id": spec.external_id,
        "name": spec.name if body.get("name") else "",
        "address": spec.address,
        "device_instance": spec.device_instance,
        "cov": spec.cov,
        "points": [
            {
                "name": p.name,
                "object_type": p.object_type,
                "object_instance": p.object_instance,
                "property": p.property,
                "unit": p.unit,
            }
            for p in spec.points
        ],
    }


def meter_json(conn: psycopg.Connection[Any], meter_id: int) -> dict[str, Any]:
    """The meter as the operator API answers it (and the UI's form is filled from)."""
    with conn.cursor(row_factory=dict_row) as cur:
        meter = cur.execute(
            """SELECT id, site_id, external_id, name, address, device_instance, cov, active,
                      updated_at, deactivated_at
               FROM meters WHERE id = %s""",
            (meter_id,),
        ).fetchone()
        assert meter is not None
        points = cur.execute(
            """SELECT id, name, object_type || ',' || object_instance AS object, property, unit,
                      active
               FROM meter_points WHERE meter_id = %s ORDER BY name""",
            (meter_id,),
        ).fetchall()
    deactivated = meter["deactivated_at"]
    return meter | {
        "updated_at": meter["updated_at"].isoformat(),
        # readings stamped from then on are refused; earlier ones are still accepted
        "deactivated_at": deactivated.isoformat() if deactivated else None,
        "points": points,
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
        """INSERT INTO meters (site_id, external_id, name, address, device_instance, cov)
           VALUES (%s, %s, %s, %s, %s, %s)
           ON CONFLICT (site_id, external_id) DO NOTHING RETURNING id""",
        (
            site_id,
            meter["external_id"],
            meter["name"],
            meter["address"],
            meter["device_instance"],
            meter.get("cov", False),
        ),
    ).fetchone()
    if row is None:
        raise ApiError(
            409,
            f"site {site_id} already has a meter {meter['external_id']!r}; use PUT to change it",
        )
    _write_points(conn, row[0], meter["points"])
    audit.record(
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
                   cov = %s, active = true, updated_at = now() WHERE id = %s""",
            (
                meter["external_id"],
                meter["name"],
                meter["address"],
                meter["device_instance"],
                meter.get("cov", False),
                meter_id,
            ),
        )
    except psycopg.errors.UniqueViolation:
        raise ApiError(
            409, f"the site already has another meter {meter['external_id']!r}"
        ) from None
    _write_points(conn, meter_id, meter["points"])
    audit.record(
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
    audit.record(conn, tenant_id, actor, "meter.deactivate", ("meter", meter_id))


def meter_tenant(conn: psycopg.Connection[Any], meter_id: int) -> int | None:
    row = conn.execute(
        "SELECT s.tenant_id FROM meters m JOIN sites s ON s.id = m.site_id WHERE m.id = %s",
        (meter_id,),
    ).fetchone()
    return None if row is None else int(row[0])
