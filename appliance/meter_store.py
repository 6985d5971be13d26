"""The local meter store: the meters and data points this appliance polls.

One writer for both ways a meter list arrives — a meter-config pull from central
(``appliance.sync.meter_config``) and a local meters file (``meters load``) — each holding the
meter-list lock (``appliance.locks.METER_LIST``) while it writes. Meters are never deleted, only
deactivated, so their readings always keep a meter; the collector sees a change without a restart.
"""

from __future__ import annotations

from typing import Any

import psycopg

from common.meter_spec import MeterSpec, PointSpec


def _apply_points(
    conn: psycopg.Connection[Any], meter_id: int, points: tuple[PointSpec, ...]
) -> bool:
    existing = {
        r[0]: r[1:]
        for r in conn.execute(
            "SELECT name, id, object_type, object_instance, property, unit, active"
            " FROM meter_points WHERE meter_id = %s",
            (meter_id,),
        )
    }
    changed = False
    for p in points:
        want = (p.object_type, p.object_instance, p.property, p.unit, True)
        have = existing.pop(p.name, None)
        if have is None:
            conn.execute(
                "INSERT INTO meter_points (meter_id, name, object_type, object_instance,"
                " property, unit) VALUES (%s, %s, %s, %s, %s, %s)",
                (meter_id, p.name, *want[:4]),
            )
            changed = True
        elif tuple(have[1:]) != want:
            conn.execute(
                "UPDATE meter_points SET object_type = %s, object_instance = %s, property = %s,"
                " unit = %s, active = true WHERE id = %s",
                (*want[:4], have[0]),
            )
            changed = True
    for _name, (point_id, *_rest, active) in existing.items():
        if active:
            conn.execute("UPDATE meter_points SET active = false WHERE id = %s", (point_id,))
            changed = True
    return changed


def replace_meters(
    conn: psycopg.Connection[Any], meters: list[MeterSpec], source: str = "central"
) -> tuple[int, int, int]:
    """Make the local meters match ``meters`` (in the caller's transaction).

    Returns (inserted, updated, deactivated). Meters absent from the list are deactivated,
    whatever their source: once enrolled, central's list is the whole truth for the site.
    """
    existing = {
        r[0]: r[1:]
        for r in conn.execute(
            "SELECT external_id, id, name, address, device_instance, cov, active, source FROM meters"
        )
    }
    inserted = updated = deactivated = 0
    for m in meters:
        have = existing.pop(m.external_id, None)
        if have is None:
            row = conn.execute(
                "INSERT INTO meters (external_id, name, address, device_instance, cov, source)"
                " VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
                (m.external_id, m.name, m.address, m.device_instance, m.cov, source),
            ).fetchone()
            assert row is not None
            _apply_points(conn, row[0], m.points)
            inserted += 1
            continue
        meter_id = have[0]
        fields_changed = tuple(have[1:]) != (
            m.name,
            m.address,
            m.device_instance,
            m.cov,
            True,
            source,
        )
        if fields_changed:
            conn.execute(
                "UPDATE meters SET name = %s, address = %s, device_instance = %s, cov = %s,"
                " active = true, source = %s, updated_at = now() WHERE id = %s",
                (m.name, m.address, m.device_instance, m.cov, source, meter_id),
            )
        points_changed = _apply_points(conn, meter_id, m.points)
        if points_changed and not fields_changed:
            conn.execute("UPDATE meters SET updated_at = now() WHERE id = %s", (meter_id,))
        if fields_changed or points_changed:
            updated += 1
    for _external_id, (meter_id, *_rest, active, _source) in existing.items():
        if active:
            conn.execute(
                "UPDATE meters SET active = false, updated_at = now() WHERE id = %s", (meter_id,)
            )
            deactivated += 1
    return inserted, updated, deactivated
