"""Meters on another IP subnet, reached through a BBMD as a registered foreign device.

Three network namespaces (``bn-`` prefix): the appliance's subnet, an IP router, and the meters'
subnet with the site's BBMD. Broadcasts do not cross the router, so a Who-Is from the appliance
finds nothing unless it registers with the BBMD, which re-broadcasts it on the meters' subnet and
forwards the I-Ams back. Addresses from 198.18.0.0/15 exist only inside the namespaces. The
collector runs inside the appliance's namespace and reaches the edge PostgreSQL by its Unix
socket (a socket file is not bound to a network namespace); the upload runs outside. Needs root
and iproute2; skipped otherwise. The namespaces are deleted whatever happens.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest

from appliance.sync.meter_config import sync_meters
from appliance.sync.pump import drain
from tests.central_fixtures import CentralServer
from tests.sync_helpers import assert_edge_equals_central, edge_settings, settings_env, wait_until
from tests.test_broadcast_discovery import _ip, _running

APPLIANCE_NET = "198.18.30"
METER_NET = "198.18.31"
METER_HOST, BBMD_HOST, ROUTER_HOST = 2, 3, 254
INSTANCE = 7301
REPO = Path(__file__).resolve().parent.parent
PG_SOCKET_DIR = "/var/run/postgresql"


@pytest.fixture
def routed() -> Iterator[tuple[str, str]]:
    """(appliance, meters) namespaces on two subnets joined by an IP router namespace."""
    if os.geteuid() != 0:
        pytest.skip("creating network namespaces needs root")
    if shutil.which("ip") is None:
        pytest.skip("iproute2's 'ip' is not installed")
    tag = str(os.getpid() % 100_000)
    appliance_ns, router_ns, meters_ns = f"bn-a{tag}", f"bn-r{tag}", f"bn-m{tag}"
    created: list[str] = []
    try:
        for ns in (appliance_ns, router_ns, meters_ns):
            result = _ip("netns", "add", ns, check=False)
            if result.returncode != 0:
                pytest.skip(f"cannot create a network namespace: {result.stderr.strip()}")
            created.append(ns)
            _ip("-n", ns, "link", "set", "lo", "up")
        for ns, net, dev, ips in (
            (appliance_ns, APPLIANCE_NET, f"bna{tag}", [1]),
            (meters_ns, METER_NET, f"bnm{tag}", [METER_HOST, BBMD_HOST]),
        ):
            peer = f"{dev}r"
            _ip("link", "add", dev, "netns", ns, "type", "veth", "peer", "name", peer,
                "netns", router_ns)  # fmt: skip
            for host in ips:
                _ip("-n", ns, "addr", "add", f"{net}.{host}/24", "dev", dev)
            _ip("-n", router_ns, "addr", "add", f"{net}.{ROUTER_HOST}/24", "dev", peer)
            _ip("-n", ns, "link", "set", dev, "up")
            _ip("-n", router_ns, "link", "set", peer, "up")
            _ip("-n", ns, "route", "add", "default", "via", f"{net}.{ROUTER_HOST}")
        forward = subprocess.run(
            ["ip", "netns", "exec", router_ns, "sysctl", "-qw", "net.ipv4.ip_forward=1"],
            check=False, capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        if forward.returncode != 0:
            pytest.skip(f"cannot turn on forwarding in the router namespace: {forward.stderr}")
        yield appliance_ns, meters_ns
    finally:
        for ns in created:
            _ip("netns", "del", ns, check=False)


def _meters_and_bbmd(meters_ns: str) -> list[Any]:
    simulate = [
        "appliance", "simulate", "--count=1", "--base-port=47808", f"--first-instance={INSTANCE}",
        "--points=4", f"--host={METER_NET}.{METER_HOST}/24",
    ]  # fmt: skip
    return [
        _running(
            meters_ns, ["tests.bacnet_bbmd", f"{METER_NET}.{BBMD_HOST}/24:47808"], "bbmd up", 1
        ),
        _running(meters_ns, simulate, "up at", 1),
    ]


def _in_ns(ns: str, *args: str, env: dict[str, str] | None = None, timeout: float = 120) -> Any:
    return subprocess.run(
        ["ip", "netns", "exec", ns, sys.executable, "-m", "appliance", *args],
        check=False, capture_output=True, text=True, timeout=timeout, cwd=REPO, env=env,
    )  # fmt: skip


def test_a_foreign_device_finds_meters_behind_an_ip_router_through_the_bbmd(
    routed: tuple[str, str], tmp_path: Path
) -> None:
    appliance_ns, meters_ns = routed
    local = f"--local-address={APPLIANCE_NET}.1:47808"
    bbmd, sim = _meters_and_bbmd(meters_ns)
    with bbmd, sim:
        # without the BBMD a broadcast stays on the appliance's subnet: nothing answers
        alone = _in_ns(appliance_ns, "discover", f"{local[:-6]}/24:47808", "--timeout=2",
                       f"--output={tmp_path / 'alone.json'}")  # fmt: skip
        assert alone.returncode == 1, alone.stdout + alone.stderr
        found = _in_ns(appliance_ns, "discover", local, f"--bbmd={METER_NET}.{BBMD_HOST}",
                       "--timeout=3", f"--output={tmp_path / 'meters.json'}",
                       f"--low={INSTANCE}", f"--high={INSTANCE}")  # fmt: skip
    assert found.returncode == 0, found.stdout + found.stderr
    assert "registered with BBMD" in found.stdout + found.stderr
    meters = json.loads((tmp_path / "meters.json").read_text())
    assert [(m["device_instance"], m["address"]) for m in meters] == [
        (INSTANCE, f"{METER_NET}.{METER_HOST}")
    ]


def test_a_bbmd_that_does_not_answer_is_one_clear_line(routed: tuple[str, str]) -> None:
    appliance_ns, _ = routed
    found = _in_ns(appliance_ns, "discover", f"--local-address={APPLIANCE_NET}.1:47808",
                   f"--bbmd={METER_NET}.{BBMD_HOST}", "--timeout=2", "--output=-",
                   "--low=1", "--high=1")  # fmt: skip
    lines = [
        line
        for line in (found.stdout + found.stderr).splitlines()
        if "foreign-device registration" in line
    ]
    assert len(lines) == 1, found.stdout + found.stderr
    assert f"{METER_NET}.{BBMD_HOST}" in lines[0] and "--bbmd" in lines[0]


@pytest.mark.slow
def test_readings_of_a_meter_behind_a_bbmd_reach_central(
    routed: tuple[str, str],
    central_server: CentralServer,
    edge_db_url: str,
    redis_url: str,
    tmp_path: Path,
) -> None:
    """The meter is configured by instance only: the collector finds it with a Who-Is through
    the BBMD, polls it across the router, and its readings go to central."""
    appliance_ns, meters_ns = routed
    url = urlsplit(edge_db_url)
    if not Path(PG_SOCKET_DIR, f".s.PGSQL.{url.port or 5432}").exists():
        pytest.skip("the test PostgreSQL has no Unix socket the namespaced collector could use")
    site = central_server.create_site("routed-plant")
    central_server.add_meter(
        site.site_id, "behind-bbmd", [("energy_kwh", "analog-input,1", "kWh")],
        address=None, device_instance=INSTANCE,
    )  # fmt: skip
    settings = edge_settings(edge_db_url, redis_url, central_server, site)
    assert sync_meters(settings).result == "ok"
    socket_url = f"postgresql://{url.username}@/{url.path.lstrip('/')}?host={PG_SOCKET_DIR}&port={url.port or 5432}"
    env = settings_env(
        settings,
        tmp_path,
        METERIT_DATABASE_URL=socket_url,
        METERIT_BACNET_ADDRESS=f"{APPLIANCE_NET}.1:47808",
        METERIT_BACNET_BBMD=f"{METER_NET}.{BBMD_HOST}",
        METERIT_POLL_INTERVAL_S="1",
        METERIT_BACKFILL_MAX_DAYS="0",
    )
    bbmd, sim = _meters_and_bbmd(meters_ns)
    with bbmd, sim:
        collector = subprocess.Popen(
            ["ip", "netns", "exec", appliance_ns, sys.executable, "-m", "appliance", "collector"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO, env=env,
        )  # fmt: skip
        try:

            def polled() -> bool:
                with psycopg.connect(edge_db_url) as conn:
                    row = conn.execute("SELECT count(*) FROM readings").fetchone()
                return bool(row and row[0] >= 3)

            try:
                wait_until(polled, 60, "readings of the meter behind the BBMD", interval=0.5)
            except AssertionError as err:
                collector.terminate()
                raise AssertionError(f"{err}\n{collector.communicate(timeout=30)[0]}") from None
        finally:
            if collector.poll() is None:
                collector.terminate()
        log = collector.communicate(timeout=30)[0]
    assert "registered with BBMD" in log, log
    assert drain(settings).stopped == "empty"
    assert assert_edge_equals_central(edge_db_url, central_server, site.site_id) >= 3


def test_a_malformed_bbmd_setting_stops_the_collector_naming_it(
    edge_db_url: str, tmp_path: Path
) -> None:
    env = settings_env(edge_settings(edge_db_url, "redis://127.0.0.1:6379/3", None, None), tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "appliance", "collector"],
        env=env | {"METERIT_BACNET_BBMD": "bbmd.example:47808"},
        check=False, capture_output=True, text=True, timeout=60, cwd=REPO,
    )  # fmt: skip
    assert done.returncode == 78, done.stdout + done.stderr
    assert "METERIT_BACNET_BBMD" in done.stderr and "IP[:PORT]" in done.stderr
