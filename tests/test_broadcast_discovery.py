"""Broadcast Who-Is on a real Ethernet segment, not loopback.

Loopback cannot carry a subnet broadcast between ports, so this test builds its own segment: two
network namespaces (the appliance's and the meters') joined by a veth pair, with addresses from
198.18.0.0/15 (set aside for benchmarking networks) that exist only inside those namespaces and
have no route anywhere else. The meters run in one namespace, ``meterit-appliance discover`` in
the other, exactly as installers run it. Needs root and iproute2; skipped otherwise. The
namespaces (and with them the veth pair) are deleted whatever happens.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

NET = "198.18.7"  # the appliance's /24; lives only inside the test's namespaces
FIELD_NET = "198.18.8"  # the meter network behind the router
METER_HOSTS = (2, 3, 4)
ROUTER_HOST = 5
FIELD_HOSTS = (2, 3)
FIELD_NETWORK_NUMBER = 2
FIRST_INSTANCE = 7001
FIRST_FIELD_INSTANCE = 7101
REPO = Path(__file__).resolve().parent.parent


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["ip", *args], check=False, capture_output=True, text=True, timeout=30)
    if check and result.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {result.stderr.strip()}")
    return result


@pytest.fixture
def segment() -> Iterator[tuple[str, str, str]]:
    """(appliance, meters, field) namespaces: the appliance and the meters share the /24 NET; the
    field namespace is a second subnet, FIELD_NET, reachable only through a BACnet router that
    a test may start in the meters namespace. All deleted afterwards."""
    if os.geteuid() != 0:
        pytest.skip("creating network namespaces needs root")
    if shutil.which("ip") is None:
        pytest.skip("iproute2's 'ip' is not installed")
    tag = str(os.getpid() % 100_000)
    names = (f"meterit-a{tag}", f"meterit-m{tag}", f"meterit-f{tag}")
    appliance_ns, meters_ns, field_ns = names
    created: list[str] = []
    try:
        for ns in names:
            result = _ip("netns", "add", ns, check=False)
            if result.returncode != 0:
                pytest.skip(f"cannot create a network namespace: {result.stderr.strip()}")
            created.append(ns)
        # both ends of each pair are created straight inside the namespaces: the host's own
        # network is never touched
        links = (
            (appliance_ns, f"mta{tag}", [f"{NET}.1"], meters_ns, f"mtm{tag}",
             [f"{NET}.{h}" for h in (*METER_HOSTS, ROUTER_HOST)]),
            (meters_ns, f"mtr{tag}", [f"{FIELD_NET}.1"], field_ns, f"mtf{tag}",
             [f"{FIELD_NET}.{h}" for h in FIELD_HOSTS]),
        )  # fmt: skip
        for ns_a, dev_a, ips_a, ns_b, dev_b, ips_b in links:
            _ip(
                "link", "add", dev_a, "netns", ns_a, "type", "veth",
                "peer", "name", dev_b, "netns", ns_b,
            )  # fmt: skip
            for ns, dev, ips in ((ns_a, dev_a, ips_a), (ns_b, dev_b, ips_b)):
                for ip in ips:
                    _ip("-n", ns, "addr", "add", f"{ip}/24", "dev", dev)
                _ip("-n", ns, "link", "set", "lo", "up")
                _ip("-n", ns, "link", "set", dev, "up")
        yield appliance_ns, meters_ns, field_ns
    finally:
        for ns in created:
            _ip("netns", "del", ns, check=False)


def _wait_for_lines(proc: subprocess.Popen[str], marker: str, count: int, timeout: float) -> str:
    """Read the process's output until ``marker`` appeared ``count`` times; returns what was read."""
    seen: list[str] = []
    done = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            seen.append(line)
            if sum(marker in s for s in seen) >= count:
                done.set()
        done.set()

    threading.Thread(target=read, daemon=True).start()
    done.wait(timeout)
    return "".join(seen)


@contextlib.contextmanager
def _running(ns: str, args: list[str], marker: str, count: int) -> Iterator[None]:
    """A Python module run inside namespace ``ns`` until the block ends; ready once ``marker``
    was printed ``count`` times."""
    proc = subprocess.Popen(
        ["ip", "netns", "exec", ns, sys.executable, "-m", *args],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO,
    )  # fmt: skip
    try:
        log = _wait_for_lines(proc, marker, count, 60)
        assert log.count(marker) == count, log
        yield
    finally:
        proc.terminate()
        proc.wait(10)


def _simulate(
    ns: str, first_instance: int, hosts: list[str]
) -> contextlib.AbstractContextManager[None]:
    args = [
        "appliance", "simulate", f"--count={len(hosts)}", "--base-port=47808",
        f"--first-instance={first_instance}", "--points=4", *(f"--host={h}/24" for h in hosts),
    ]  # fmt: skip
    return _running(ns, args, "up at", len(hosts))


def _discover(ns: str, output: Path, *extra: str) -> list[dict[str, object]]:
    discovery = subprocess.run(
        ["ip", "netns", "exec", ns, sys.executable, "-m", "appliance", "discover",
         f"--local-address={NET}.1/24:47808", "--timeout=2", f"--output={output}", *extra],
        check=False, capture_output=True, text=True, timeout=120, cwd=REPO,
    )  # fmt: skip
    assert discovery.returncode == 0, discovery.stdout + discovery.stderr
    found: list[dict[str, object]] = json.loads(output.read_text())
    assert all(len(m["points"]) == 4 for m in found), found  # type: ignore[arg-type]
    return sorted(found, key=lambda m: str(m["device_instance"]))


def test_broadcast_who_is_finds_every_meter_on_the_segment(
    segment: tuple[str, str, str], tmp_path: Path
) -> None:
    appliance_ns, meters_ns, _ = segment
    with _simulate(meters_ns, FIRST_INSTANCE, [f"{NET}.{h}" for h in METER_HOSTS]):
        found = _discover(appliance_ns, tmp_path / "meters.json")
    assert [(m["device_instance"], m["address"]) for m in found] == [
        (FIRST_INSTANCE + i, f"{NET}.{h}") for i, h in enumerate(METER_HOSTS)
    ]


def test_meters_behind_a_bacnet_router_are_found_and_read_through_it(
    segment: tuple[str, str, str], tmp_path: Path
) -> None:
    """Two meters on another network, both behind the router's one IP: Who-Is crosses the router,
    and their object lists, names and units are read through it by network number."""
    appliance_ns, meters_ns, field_ns = segment
    router = [
        "tests.bacnet_router",
        f"{NET}.{ROUTER_HOST}/24:47808", "1",
        f"{FIELD_NET}.1/24:47808", str(FIELD_NETWORK_NUMBER),
    ]  # fmt: skip
    field = [f"{FIELD_NET}.{h}" for h in FIELD_HOSTS]
    with (
        _running(meters_ns, router, "router up", 1),
        _simulate(field_ns, FIRST_FIELD_INSTANCE, field),
    ):
        last = FIRST_FIELD_INSTANCE + len(FIELD_HOSTS) - 1
        found = _discover(
            appliance_ns,
            tmp_path / "meters.json",
            f"--low={FIRST_FIELD_INSTANCE}",
            f"--high={last}",
        )
    assert [(m["device_instance"], m["address"]) for m in found] == [
        (FIRST_FIELD_INSTANCE + i, f"{FIELD_NETWORK_NUMBER}:{ip}") for i, ip in enumerate(field)
    ]
