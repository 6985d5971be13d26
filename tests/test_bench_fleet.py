"""The fleet simulator (``bench/fleet.py``) against a real central under gunicorn: its appliances
speak the real sync protocol, so what it measures is what real appliances would cost.

Time is compressed (a simulated minute of 0.4 s) and every site's heartbeat and config pull come
every minute or two, so a few seconds cover what a fleet does in an hour.
"""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import Callable

import psycopg

from bench.fleet_sim import Appliance, Clock, Faults, Fleet, batch_body
from bench.fleet_sites import FleetSite, add_sites
from bench.ingest import POINTS as POINT_UNITS
from common.wire import parse_reading
from tests.central_fixtures import CentralServer
from tests.harness import scalar

SITES = 5
METERS = 2
POINTS = 3


def test_fleet_sites_upload_heartbeat_and_pull_config_through_the_sync_api(
    make_central_server: Callable[..., CentralServer],
) -> None:
    # a simulated minute is 0.4 s here: far above the default per-site request limit
    central = make_central_server(METERIT_RATE_LIMIT="100000/minute")
    sites = add_sites(
        central.db_url, 1, SITES, n_meters=METERS, n_points=POINTS, sites_per_tenant=2
    )
    # every site returns at its first upload with 12 minutes of readings from before the run
    faults = Faults(outages_per_hour=0, bursts_per_hour=60, burst_hours=0.2)
    clock = Clock(minute_s=0.4)
    fleet = Fleet(
        central.base_url, clock, n_points=POINTS, faults=faults, heartbeat_every=2, config_every=3
    )

    async def scenario() -> None:
        await fleet.open(connections=8)
        fleet.add(sites)
        try:
            await asyncio.sleep(4.5)
        finally:
            await fleet.close()

    asyncio.run(scenario())

    stats = fleet.stats
    assert not stats.errors, stats.errors
    assert stats.rejected == 0 and stats.duplicates == 0
    assert stats.status["config", 200] == SITES, stats.status  # then If-None-Match: 304
    assert stats.status["config", 304] >= SITES, stats.status
    with psycopg.connect(central.db_url) as conn:
        stored = scalar(conn, "SELECT count(*) FROM readings")
        # exactly once: what central acknowledged as accepted is what it holds
        assert stored == fleet.accepted_total == fleet.acknowledged > 0
        assert fleet.generated - fleet.acknowledged == sum(a.unsynced for a in fleet.appliances)
        # the backlog burst: 12 minutes stamped before each site's first (at most one of them
        # after the run began) reached central
        before = scalar(conn, "SELECT count(*) FROM readings WHERE ts < %s", (clock.wall0,))
        assert before >= SITES * 11 * METERS * POINTS
        # every site's heartbeat arrived and was stored, with its backlog and meter states
        beats = conn.execute(
            """SELECT s.id, h.backlog FROM sites s JOIN site_health h ON h.site_id = s.id
               WHERE s.last_heartbeat_at IS NOT NULL"""
        ).fetchall()
        assert {b[0] for b in beats} == {s.site_id for s in sites}
        meters = scalar(conn, "SELECT count(*) FROM meter_health")
        assert meters == SITES * METERS


def test_a_simulated_minute_is_the_batch_items_of_every_live_point() -> None:
    fleet = Fleet("http://127.0.0.1:9", Clock(minute_s=60), n_points=POINTS)
    # site 200 has a dead meter (its first), which sends nothing; a name with JSON and
    # %-format characters in it is carried as it is
    meters = ("dead", 'm"%s\\', "meter-03")
    appliance = Appliance(fleet, FleetSite(7, 200, "key", meters), POINTS, 0)
    minutes = [appliance.readings_of(tick) for tick in (0, 1)]

    items = json.loads(gzip.decompress(batch_body(minutes)))["readings"]

    expected = [(m, p, u) for m in meters[1:] for p, u in POINT_UNITS[:POINTS]] * 2
    assert [(i["meter"], i["point"], i["unit"]) for i in items] == expected
    assert [m.readings for m in minutes] == [len(expected) // 2] * 2
    assert all(set(i) == {"meter", "point", "unit", "ts", "value"} for i in items)
    first, second = items[: len(items) // 2], items[len(items) // 2 :]
    assert len({i["ts"] for i in first}) == len({i["ts"] for i in second}) == 1
    assert first[0]["ts"] < second[0]["ts"]
    # every item is one central takes, and the energy counter rises minute by minute
    assert all(parse_reading(i).ts.tzinfo is not None for i in items)
    assert second[0]["value"] > first[0]["value"] > 0
