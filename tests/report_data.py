"""Known synthetic readings for the report tests, with every figure derivable by hand.

Site "Plant A" (Europe/Paris), readings every minute from 1 Sep to 31 Oct 2026 local time:

* meter ``main`` point ``energy_kwh`` (kWh counter): 15 kW (0.25 kWh a minute) in September,
  30 kW (0.5 kWh a minute) in October, except
  - 25 Oct 02:30-02:45 local, the SECOND 02:30 (UTC+1, after clocks went back): 120 kW
    (2 kWh a minute): the peak, +22.5 kWh;
  - no readings 5 Oct 08:00-10:00 local (the counter keeps counting: a gap, no energy lost,
    but the interval the readings resume in says nothing about demand);
  - 20 Oct 12:30 local the counter resets to 0 (inside an hour): the step across it counts 0,
    0.5 kWh is lost.
* meter ``main`` point ``power_kw`` (kW, not a counter): every 5 minutes, none on 12 Oct local.
* meter ``sub`` point ``energy_kwh`` (kWh): 7.5 kW (0.125 kWh a minute) both months; replaced
  10 Oct 14:00 local (the new meter's first reading, the first of an hour, reads 5.0): the step
  across the replacement counts 0, 0.125 kWh is lost.

So October's energy: main 745 h x 30 + 22.5 - 0.5 = 22372.0 kWh (October has 745 hours in
Paris), sub 745 x 7.5 - 0.125 = 5587.375; September: main 720 x 15 = 10800, sub 5400.
Values are binary fractions, so every sum is exact in floating point.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import psycopg

from central import meters, rollup, sites, tenants

PARIS = ZoneInfo("Europe/Paris")
START = datetime(2026, 9, 1, tzinfo=PARIS).astimezone(UTC)
END = datetime(2026, 11, 1, tzinfo=PARIS).astimezone(UTC)  # last reading is at END
MINUTE = timedelta(minutes=1)
PEAK = datetime(2026, 10, 25, 1, 30, tzinfo=UTC)  # 02:30 local, the second one
GAP = (datetime(2026, 10, 5, 8, tzinfo=PARIS), datetime(2026, 10, 5, 10, tzinfo=PARIS))
RESET = datetime(2026, 10, 20, 12, 30, tzinfo=PARIS)
REPLACED = datetime(2026, 10, 10, 14, 0, tzinfo=PARIS)
POWER_MISSING = date(2026, 10, 12)


def _main_rate(ts: datetime) -> float:
    """kWh in the minute ending at ts."""
    if PEAK < ts <= PEAK + timedelta(minutes=15):
        return 2.0
    return 0.5 if ts > datetime(2026, 10, 1, tzinfo=PARIS) else 0.25


def readings(main: int, power: int, sub: int) -> list[tuple[int, datetime, float]]:
    rows: list[tuple[int, datetime, float]] = []
    main_value, sub_value = 1000.0, 200.0
    ts = START
    while ts <= END:
        if ts > START:
            main_value += _main_rate(ts)
            sub_value += 0.125
        if ts == RESET:
            main_value = 0.0
        if ts == REPLACED:
            sub_value = 5.0
        if not GAP[0] <= ts < GAP[1]:
            rows.append((main, ts, main_value))
        rows.append((sub, ts, sub_value))
        if ts.minute % 5 == 0 and ts.astimezone(PARIS).date() != POWER_MISSING:
            rows.append((power, ts, 42.0))
        ts += MINUTE
    return rows


def load(conn: psycopg.Connection[Any], tenant_id: int | None = None) -> dict[str, int]:
    """Site, meters and readings (and a tenant unless given), rolled up; returns their ids."""
    if tenant_id is None:
        tenant_id = tenants.create_tenant(conn, "acme", "cli")
    site_id = sites.create_site(conn, tenant_id, "Plant A", "cli").site_id
    ids: dict[str, int] = {"tenant": tenant_id, "site": site_id}
    for external_id, points in (
        ("main", [("energy_kwh", "analog-input,1", "kWh"), ("power_kw", "analog-input,2", "kW")]),
        ("sub", [("energy_kwh", "analog-input,1", "kWh")]),
    ):
        body = {
            "external_id": external_id,
            "address": "127.0.0.1:47808",
            "points": [{"name": n, "object": o, "unit": u} for n, o, u in points],
        }
        ids[external_id] = meters.create_meter(
            conn, site_id, tenant_id, meters.parse_meter(body), "cli"
        )
    point = {
        (r[0], r[1]): r[2]
        for r in conn.execute(
            """SELECT m.external_id, p.name, p.id FROM meter_points p
               JOIN meters m ON m.id = p.meter_id WHERE m.site_id = %s""",
            (site_id,),
        )
    }
    ids.update(
        main_energy=point["main", "energy_kwh"],
        main_power=point["main", "power_kw"],
        sub_energy=point["sub", "energy_kwh"],
    )
    conn.execute("SELECT ensure_readings_partitions(%s, %s)", (START, END))
    with conn.cursor().copy("COPY readings (point_id, ts, value) FROM STDIN") as copy:
        for row in readings(ids["main_energy"], ids["main_power"], ids["sub_energy"]):
            copy.write_row(row)
    conn.execute(
        """INSERT INTO readings_hourly_dirty (site_id, hour)
           SELECT %s, generate_series(date_trunc('hour', %s::timestamptz), %s, '1 hour')""",
        (site_id, START, END),
    )
    conn.commit()
    rollup.run_all(conn, timedelta(0))
    return ids
