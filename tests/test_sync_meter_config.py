"""Meter config sync against a real central: property-based (hypothesis) over sequences of
central configurations, plus the ETag, the lock and the service."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from appliance import service
from appliance.locks import METER_LIST
from appliance.settings import ApplianceSettings
from appliance.sync.meter_config import MeterSyncRefused, sync_meters
from central import meters as central_meters
from tests.central_fixtures import CentralServer
from tests.harness import scalar
from tests.sync_helpers import edge_settings, with_settings
from tests.tcp_proxy import TcpProxy

IDS = [f"m{i}" for i in range(6)]
POINT_NAMES = ["energy_kwh", "power_kw", "voltage_v"]

point = st.tuples(
    st.sampled_from(["analog-input", "analog-value"]),
    st.integers(0, 5),
    st.sampled_from(["kWh", "kW", ""]),
)
meter = st.fixed_dictionaries(
    {
        "name": st.sampled_from(["", "Main", "Pump"]),
        "address": st.sampled_from(["127.0.0.1:47901", "127.0.0.1:47902"]),
        "device_instance": st.one_of(st.none(), st.integers(1000, 1003)),
        "points": st.dictionaries(st.sampled_from(POINT_NAMES), point, min_size=1, max_size=3),
    }
)
# a site's configuration: external_id -> meter; a test walks through several in a row
config = st.dictionaries(st.sampled_from(IDS), meter, max_size=5)


def _body(external_id: str, m: dict[str, Any]) -> dict[str, Any]:
    return {
        "external_id": external_id,
        "name": m["name"],
        "address": m["address"],
        "device_instance": m["device_instance"],
        "points": [
            {"name": n, "object": f"{t},{i}", "unit": u} for n, (t, i, u) in m["points"].items()
        ],
    }


def _set_central(
    central: CentralServer, site_id: int, tenant_id: int, want: dict, have: dict
) -> None:
    """Make central's site hold ``want`` (only touching what changes, as an operator would)."""
    with psycopg.connect(central.db_url) as conn:
        ids: dict[str, int] = dict(
            conn.execute(
                "SELECT external_id, id FROM meters WHERE site_id = %s", (site_id,)
            ).fetchall()
        )
        for external_id, m in want.items():
            parsed = central_meters.parse_meter(_body(external_id, m))
            if external_id not in ids:
                central_meters.create_meter(conn, site_id, tenant_id, parsed, "test")
            elif have.get(external_id) != m:
                central_meters.update_meter(conn, ids[external_id], tenant_id, parsed, "test")
        for external_id in set(have) - set(want):
            central_meters.deactivate_meter(conn, ids[external_id], tenant_id, "test")


def _edge_state(url: str) -> dict[str, dict[str, Any]]:
    with psycopg.connect(url) as conn:
        out: dict[str, dict[str, Any]] = {}
        for mid, ext, name, address, instance in conn.execute(
            "SELECT id, external_id, name, address, device_instance FROM meters WHERE active"
        ).fetchall():
            points = {
                n: (t, i, u)
                for n, t, i, u in conn.execute(
                    "SELECT name, object_type, object_instance, unit FROM meter_points"
                    " WHERE meter_id = %s AND active",
                    (mid,),
                )
            }
            out[ext] = {
                "name": name,
                "address": address,
                "device_instance": instance,
                "points": points,
            }
        return out


def _expected_edge(want: dict) -> dict:
    return {k: {**m, "name": m["name"] or k} for k, m in want.items()}


def _reset_edge(url: str) -> None:
    with psycopg.connect(url) as conn:
        conn.execute(
            "TRUNCATE meter_status, meter_points, meters, meter_sync_log RESTART IDENTITY CASCADE"
        )
        conn.execute(
            "UPDATE appliance_state SET config_etag = NULL, site_id = NULL, site_name = NULL"
        )


@pytest.fixture
def meter_sync_env(central_server: CentralServer, edge_db_url: str, redis_url: str):
    return central_server, edge_db_url, redis_url


@hsettings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=st.lists(config, min_size=1, max_size=4))
def test_edge_meters_follow_central_with_logged_counts(meter_sync_env, steps) -> None:
    """New meters inserted, changed ones updated, removed ones deactivated; each run logged
    with exactly those counts; status shows the last run; active meters = central's meters."""
    central, edge_db_url, redis_url = meter_sync_env
    site = central.create_site(f"site-{uuid.uuid4().hex[:12]}")  # unique per example
    settings = edge_settings(edge_db_url, redis_url, central, site)
    _reset_edge(edge_db_url)
    central_has: dict = {}
    ever_on_edge: set[str] = set()
    first = True
    for want in steps:
        _set_central(central, site.site_id, site.tenant_id, want, central_has)
        before = _edge_state(edge_db_url)
        result = sync_meters(settings)
        expected_edge = _expected_edge(want)
        inserted = len(set(want) - ever_on_edge)
        updated = sum(1 for k in want if k in ever_on_edge and before.get(k) != expected_edge[k])
        deactivated = len(set(before) - set(want))
        changed = first or want != central_has  # the first pull has no ETag yet
        first = False
        assert result.result == ("ok" if changed else "unchanged"), result
        if changed:
            assert (result.inserted, result.updated, result.deactivated) == (
                inserted,
                updated,
                deactivated,
            )
        assert _edge_state(edge_db_url) == expected_edge
        with psycopg.connect(edge_db_url) as conn:
            log = conn.execute(
                "SELECT result, inserted, updated, deactivated FROM meter_sync_log"
                " ORDER BY id DESC LIMIT 1"
            ).fetchone()
        assert log == (result.result, result.inserted, result.updated, result.deactivated)
        st_ = service.get_meter_sync_status(settings)
        assert st_["last_run"] is not None and st_["last_run"]["id"] == result.log_id
        assert st_["last_run"]["result"] == result.result and not st_["running"]
        assert st_["active_meters"] == len(want)
        assert len(service.get_meter_status(settings)) == len(want)
        central_has = dict(want)
        ever_on_edge |= set(want)
    with psycopg.connect(edge_db_url) as conn:
        assert scalar(conn, "SELECT count(*) FROM meter_sync_log") == len(steps)


def test_a_second_meter_sync_while_one_runs_is_refused(meter_sync_env) -> None:
    """Two real runs at once: central answers slowly (a delaying proxy), the second is refused
    with a clear message and logged, the first completes."""
    central, edge_db_url, redis_url = meter_sync_env
    site = central.create_site("plant-lock")
    central.add_meter(
        site.site_id, "main", [("energy_kwh", "analog-input,1", "kWh")], address="127.0.0.1:47901"
    )
    proxy = TcpProxy("127.0.0.1", int(central.base_url.rsplit(":", 1)[1]))
    proxy.mode, proxy.delay_s = "delay", 2.0
    settings = edge_settings(edge_db_url, redis_url, proxy.url, site)
    results: list[Any] = []
    first = threading.Thread(target=lambda: results.append(sync_meters(settings)))
    first.start()
    try:
        import time

        deadline = time.monotonic() + 10
        while service.get_meter_sync_status(settings)["last_attempt"] is None:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        with pytest.raises(MeterSyncRefused, match="another meter sync is running since"):
            sync_meters(settings)
        st_ = service.get_meter_sync_status(settings)
        assert st_["running"] and st_["last_attempt"]["result"] == "refused"  # type: ignore[index]
    finally:
        first.join()
        proxy.close()
    assert results[0].result == "ok" and results[0].inserted == 1
    st_ = service.get_meter_sync_status(settings)
    assert st_["last_run"]["result"] == "ok" and st_["active_meters"] == 1  # type: ignore[index]


def test_meter_sync_lock_is_held_across_processes(meter_sync_env) -> None:
    central, edge_db_url, redis_url = meter_sync_env
    site = central.create_site("plant-lock2")
    settings = edge_settings(edge_db_url, redis_url, central, site)
    with psycopg.connect(edge_db_url, autocommit=True) as other:
        other.execute("SELECT pg_advisory_lock(%s, %s)", METER_LIST)
        with pytest.raises(MeterSyncRefused):
            sync_meters(settings)
    assert sync_meters(settings).result == "ok"


def test_unchanged_config_costs_a_304(meter_sync_env) -> None:
    central, edge_db_url, redis_url = meter_sync_env
    site = central.create_site("plant-etag")
    central.add_meter(
        site.site_id, "main", [("energy_kwh", "analog-input,1", "kWh")], address="127.0.0.1:47901"
    )
    settings = edge_settings(edge_db_url, redis_url, central, site)
    assert sync_meters(settings).result == "ok"
    assert sync_meters(settings).result == "unchanged"
    st_ = service.get_meter_sync_status(settings)
    assert st_["config_etag"] and st_["site_id"] == site.site_id
    # the appliance learns its site's name from central (the Sync page and MCP show it)
    assert st_["site_name"] == "plant-etag"


def test_meter_sync_failure_leaves_meters_alone_and_is_logged(meter_sync_env) -> None:
    central, edge_db_url, redis_url = meter_sync_env
    site = central.create_site("plant-fail")
    central.add_meter(
        site.site_id, "main", [("energy_kwh", "analog-input,1", "kWh")], address="127.0.0.1:47901"
    )
    settings = edge_settings(edge_db_url, redis_url, central, site)
    assert sync_meters(settings).result == "ok"
    bad: ApplianceSettings = with_settings(settings, api_key="wrong-key")
    result = sync_meters(bad)
    assert result.result == "error" and "401" in (result.error or "")
    st_ = service.get_meter_sync_status(settings)
    assert st_["last_run"]["result"] == "error" and st_["active_meters"] == 1  # type: ignore[index]
