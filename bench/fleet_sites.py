"""The fleet simulator's sites, made in bulk in central's database (``bench/fleet.py``).

Tenants go through ``central.tenants.create_tenant`` (so each has the default alert rules, as a
real tenant does); sites, their API keys, meters and data points go in as a few set-based
statements per ramp step, because 10,000 sites through the one-at-a-time domain functions would
take longer than the benchmark. The rows are the ones those functions write: a key is made by
``central.keys.generate`` and stored as its ``hash_key``, exactly as ``site create`` stores it.
The config-version triggers are switched off for the load (they would bump the site once per
meter and point): every site is left at version 1, the ETag its appliance first pulls.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

# a meter's ten data points, as bench/ingest.py's meters have them (kWh makes energy_kwh a
# counter for the rollup: central.reports.units)
from bench.ingest import POINTS
from central import keys, tenants


@dataclass(frozen=True, slots=True)
class FleetSite:
    """What one simulated appliance knows of its site: the id, its key, its meters."""

    site_id: int
    number: int  # 1-based position in the fleet (phases and names derive from it)
    api_key: str
    meters: tuple[str, ...]


def meter_ids(n_meters: int) -> tuple[str, ...]:
    return tuple(f"meter-{m:02d}" for m in range(1, n_meters + 1))


def add_sites(
    url: str,
    first: int,
    last: int,
    *,
    n_meters: int,
    n_points: int,
    sites_per_tenant: int,
) -> list[FleetSite]:
    """Sites number ``first`` .. ``last`` (1-based, inclusive), each with its key and
    ``n_meters`` meters of ``n_points`` points, in tenants of ``sites_per_tenant`` sites."""
    points = POINTS[:n_points]
    made: list[FleetSite] = []
    with psycopg.connect(url) as conn:
        # tenants of this range that do not exist yet
        tenant_ids: dict[int, int] = {
            int(name.removeprefix("fleet-")): tid
            for tid, name in conn.execute("SELECT id, name FROM tenants WHERE name LIKE 'fleet-%'")
        }
        for t in range((first - 1) // sites_per_tenant, (last - 1) // sites_per_tenant + 1):
            if t not in tenant_ids:
                tenant_ids[t] = tenants.create_tenant(conn, f"fleet-{t:04d}", "cli")
        conn.execute("SET session_replication_role = replica")  # no config-version triggers
        numbers = list(range(first, last + 1))
        rows = conn.execute(
            """INSERT INTO sites (tenant_id, name)
               SELECT t, 'site-' || lpad(n::text, 6, '0')
               FROM unnest(%s::int[], %s::int[]) AS x (n, t)
               RETURNING id, name""",
            (numbers, [tenant_ids[(n - 1) // sites_per_tenant] for n in numbers]),
        ).fetchall()
        site_of = {int(name.removeprefix("site-")): sid for sid, name in rows}
        new_keys = {n: keys.generate() for n in numbers}
        with (
            conn.cursor() as cur,
            cur.copy("COPY api_keys (site_id, prefix, key_hash) FROM STDIN") as copy,
        ):
            for n, (plaintext, prefix) in new_keys.items():
                copy.write_row((site_of[n], prefix, keys.hash_key(plaintext)))
        site_ids = [site_of[n] for n in numbers]
        conn.execute(
            """INSERT INTO meters (site_id, external_id, name, address, device_instance)
               SELECT s, 'meter-' || lpad(k::text, 2, '0'), 'Meter ' || k,
                      '10.0.0.' || k || ':47808', 1000 + k
               FROM unnest(%s::int[]) AS s, generate_series(1, %s) AS k""",
            (site_ids, n_meters),
        )
        conn.execute(
            """INSERT INTO meter_points (meter_id, name, object_type, object_instance, unit)
               SELECT m.id, p.name, 'analog-input', p.i - 1, p.unit
               FROM meters m
               CROSS JOIN unnest(%s::text[], %s::text[]) WITH ORDINALITY AS p (name, unit, i)
               WHERE m.site_id = ANY(%s)""",
            ([p[0] for p in points], [p[1] for p in points], site_ids),
        )
        conn.execute("SET session_replication_role = origin")
        conn.commit()
        for n in numbers:
            made.append(FleetSite(site_of[n], n, new_keys[n][0], meter_ids(n_meters)))
    analyze(url)
    return made


def analyze(url: str) -> None:
    """Fresh statistics after a bulk load, so the planner sees the fleet as it now is."""
    with psycopg.connect(url, autocommit=True) as conn:
        for table in ("sites", "api_keys", "meters", "meter_points"):
            conn.execute(f"ANALYZE {table}")
