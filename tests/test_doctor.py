"""``meterit-appliance doctor`` and ``meterit-central doctor`` as an installer runs them: real
processes against real PostgreSQL, Redis, a central under gunicorn serving TLS itself, and
simulated BACnet meters polled by the real collector."""

from __future__ import annotations

import json
import logging
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from appliance.doctor import bacnet_port
from appliance.settings import load_settings
from appliance.sync.meter_config import sync_meters
from tests.central_fixtures import (
    CentralServer,
    start_central_server,
)
from tests.certs import self_signed
from tests.cli_run import doctor, line
from tests.ports import (
    free_tcp_port,
    free_udp_port,
)
from tests.sync_helpers import (
    wait_until,
    with_settings,
)
from tests.web_fixtures import (
    Appliance,
    SimulatorThread,
    add_central_meter,
    log_in,
    make_appliance,
    screenshot,
    sim_specs,
)

logger = logging.getLogger(__name__)


@dataclass
class Healthy:
    appliance: Appliance
    central: CentralServer
    sims: SimulatorThread
    cert: Path


@pytest.fixture
def healthy(
    central_db_url: str, redis_url: str, edge_db_url: str, tmp_path: Path
) -> Iterator[Healthy]:
    """Central over HTTPS (30-day certificate, its CA given to the appliance), a site with two
    simulated meters the collector is polling."""
    cert, key = self_signed(tmp_path, days=30, name="central")
    central = start_central_server(central_db_url, redis_url, tmp_path, tls=(cert, key))
    specs = sim_specs(2)
    sims = SimulatorThread(specs)
    site = central.create_site("plant-doctor")
    for spec in specs:
        add_central_meter(central, site.site_id, spec)
    appliance = make_appliance(edge_db_url, redis_url, tmp_path, central, site)
    appliance.settings = with_settings(appliance.settings, ca_bundle=str(cert))
    appliance.env["METERIT_CA_BUNDLE"] = str(cert)
    try:
        assert sync_meters(appliance.settings).result == "ok"
        appliance.start("collector")
        wait_until(
            lambda: (
                appliance.sql("SELECT count(*) FROM meter_status WHERE state = 'reachable'")[0][0]
                == 2
            ),
            60,
            "the collector to reach both meters",
        )
        yield Healthy(appliance, central, sims, cert)
    finally:
        appliance.stop()
        sims.close()
        central.stop()


def test_healthy_appliance_is_all_ok(healthy: Healthy) -> None:
    rc, out = doctor("appliance", healthy.appliance.env)
    logger.info("doctor:\n%s", out)
    assert rc == 0, out
    for ln in out.splitlines():
        assert ln.startswith(("OK ", "SKIP ")), out
    assert "accepted: site 'plant-doctor'" in line(out, "api key")
    assert "expires" in line(out, "tls certificate")
    assert "answering (6 points" in line(out, "meter sim-3001")
    assert "bound by the collector" in line(out, "bacnet port")
    assert "days of readings at 1,036,800 a day" in line(out, "buffer disk")  # 12 points, 1 s

    rc, out = doctor("appliance", healthy.appliance.env, "--json")
    report = json.loads(out)
    assert rc == 0 and report["status"] == "ok"
    names = [c["name"] for c in report["checks"]]
    for name in ("settings", "database", "redis", "central", "api key", "clock", "backlog"):
        assert name in names, names


@pytest.mark.browser
def test_broken_appliances_fail_with_the_fix(healthy: Healthy, new_page: Any) -> None:
    env = healthy.appliance.env

    rc, out = doctor("appliance", {**env, "METERIT_API_KEY": "mk_wrong_key_0000000000"})
    assert rc == 2, out
    assert line(out, "api key").startswith("FAIL") and "METERIT_API_KEY" in line(out, "api key")
    assert line(out, "central").startswith("OK")

    gone = f"https://127.0.0.1:{free_tcp_port()}"
    rc, out = doctor("appliance", {**env, "METERIT_CENTRAL_URL": gone})
    assert rc == 2, out
    assert line(out, "central").startswith("FAIL") and "unreachable" in line(out, "central")
    assert line(out, "api key").startswith("SKIP")

    untrusted = {k: v for k, v in env.items() if k != "METERIT_CA_BUNDLE"}
    rc, out = doctor("appliance", untrusted)
    assert rc == 2, out
    assert line(out, "tls certificate").startswith("FAIL"), out
    assert "METERIT_CA_BUNDLE" in line(out, "tls certificate")

    rc, out = doctor(
        "appliance", {**env, "METERIT_REDIS_URL": f"redis://127.0.0.1:{free_tcp_port()}/0"}
    )
    assert rc == 2 and line(out, "redis").startswith("FAIL"), out

    healthy.sims.set_offline(3002, True)
    wait_until(
        lambda: (
            healthy.appliance.sql(
                "SELECT state FROM meter_status s JOIN meters m ON m.id = s.meter_id"
                " WHERE m.external_id = 'sim-3002'"
            )[0][0]
            == "unreachable"
        ),
        60,
        "the collector to lose sim-3002",
    )
    rc, out = doctor("appliance", env)
    logger.info("doctor:\n%s", out)
    assert rc == 2, out
    assert line(out, "meter sim-3002").startswith("FAIL")
    assert "discover" in line(out, "meter sim-3002")
    assert line(out, "meter sim-3001").startswith("OK")

    # the local UI's Health page shows the same checks, behind the login, at phone width
    url = healthy.appliance.start_web()
    assert requests.get(url + "/checks", timeout=30, allow_redirects=False).status_code in (
        302,
        401,
    )
    phone = log_in(new_page(width=390, height=844, mobile=True), url)
    phone.goto(url + "/checks")
    assert phone.locator("#health-status").inner_text() == "FAIL"
    assert phone.locator('[data-check="meter sim-3002"]').get_attribute("data-status") == "fail"
    assert "Fix: check the meter" in phone.locator('[data-check="meter sim-3002"]').inner_text()
    assert phone.locator('[data-check="api key"]').get_attribute("data-status") == "ok"
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390
    screenshot(phone, "health-phone")


def test_unenrolled_appliance_warns(edge_db_url: str, redis_url: str, tmp_path: Path) -> None:
    appliance = make_appliance(edge_db_url, redis_url, tmp_path)
    rc, out = doctor("appliance", appliance.env)
    assert line(out, "central").startswith("WARN") and "not enrolled" in line(out, "central")
    assert line(out, "meters").startswith("WARN")
    # its collector is not started: the one failure, and it says so
    assert rc == 2 and [ln for ln in out.splitlines() if ln.startswith("FAIL")] == [
        line(out, "bacnet port")
    ], out
    assert "not bound" in line(out, "bacnet port")


def test_central_doctor(
    central_db_url: str, empty_db_url: str, redis_url: str, tmp_path: Path
) -> None:
    config = tmp_path / "central.toml"
    config.touch()
    env = {k: v for k, v in os.environ.items() if not k.startswith("METERIT_")}
    env.update(
        METERIT_CONFIG=str(config), METERIT_DATABASE_URL=central_db_url, METERIT_REDIS_URL=redis_url
    )
    rc, out = doctor("central", env)
    assert rc == 0, out
    assert line(out, "database").startswith("OK") and line(out, "redis").startswith("OK")

    rc, out = doctor("central", {**env, "METERIT_DATABASE_URL": empty_db_url})
    assert rc == 2, out
    assert "meterit-central migrate" in line(out, "database")

    rc, out = doctor(
        "central", {**env, "METERIT_REDIS_URL": f"redis://127.0.0.1:{free_tcp_port()}/0"}
    )
    assert rc == 2 and line(out, "redis").startswith("FAIL"), out

    rc, out = doctor("central", {**env, "METERIT_REDIS_URL": "ftp://nowhere"})
    assert rc == 2 and line(out, "settings").startswith("FAIL"), out


def test_bacnet_port_not_bound_or_held_by_another_program_fails(tmp_path: Path) -> None:
    config = tmp_path / "appliance.toml"
    config.touch()
    port = free_udp_port()
    settings = load_settings(
        {"METERIT_CONFIG": str(config), "METERIT_BACNET_ADDRESS": f"127.0.0.1/8:{port}"}
    )
    check = bacnet_port(settings)
    assert check.status == "fail" and "not bound" in check.detail, check
    assert "meterit-collector" in check.fix

    # another BACnet program on the port (here: this test) keeps the collector from binding it
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as other:
        other.bind(("0.0.0.0", port))
        check = bacnet_port(settings)
    assert check.status == "fail", check
    assert f"held by pid {os.getpid()}" in check.detail and "not the collector" in check.detail
    assert "METERIT_BACNET_ADDRESS" in check.fix

    # a host without /proc/net/udp cannot tell: skipped, not failed
    assert bacnet_port(settings, proc=tmp_path).status == "skip"
