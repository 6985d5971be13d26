"""Broadcast Who-Is on a real Ethernet segment, not loopback.

Loopback cannot carry a subnet broadcast between ports, so this test builds its own segment: two
network namespaces (the appliance's and the meters') joined by a veth pair, with addresses from
198.18.0.0/15 (set aside for benchmarking networks) that exist only inside those namespaces and
have no route anywhere else. The meters run in one namespace, ``meterit-appliance discover`` in
the other, exactly as installers run it. Needs root and iproute2; skipped otherwise. The
namespaces (and with them the veth pair) are deleted whatever happens.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

NET = "198.18.7"  # the segment's /24; lives only inside the two namespaces
METER_HOSTS = (2, 3, 4)
FIRST_INSTANCE = 7001


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["ip", *args], check=False, capture_output=True, text=True, timeout=30)
    if check and result.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {result.stderr.strip()}")
    return result


@pytest.fixture
def segment() -> Iterator[tuple[str, str]]:
    """(appliance namespace, meters namespace) on one /24, deleted afterwards."""
    if os.geteuid() != 0:
        pytest.skip("creating network namespaces needs root")
    if shutil.which("ip") is None:
        pytest.skip("iproute2's 'ip' is not installed")
    tag = str(os.getpid() % 100_000)
    appliance_ns, meters_ns = f"meterit-a{tag}", f"meterit-m{tag}"
    created: list[str] = []
    try:
        for ns in (appliance_ns, meters_ns):
            result = _ip("netns", "add", ns, check=False)
            if result.returncode != 0:
                pytest.skip(f"cannot create a network namespace: {result.stderr.strip()}")
            created.append(ns)
        # both ends are created straight inside the namespaces: the host's network is untouched
        veth_a, veth_m = f"mta{tag}", f"mtm{tag}"
        _ip(
            "link", "add", veth_a, "netns", appliance_ns, "type", "veth",
            "peer", "name", veth_m, "netns", meters_ns,
        )  # fmt: skip
        _ip("-n", appliance_ns, "addr", "add", f"{NET}.1/24", "dev", veth_a)
        for host in METER_HOSTS:
            _ip("-n", meters_ns, "addr", "add", f"{NET}.{host}/24", "dev", veth_m)
        for ns, dev in ((appliance_ns, veth_a), (meters_ns, veth_m)):
            _ip("-n", ns, "link", "set", "lo", "up")
            _ip("-n", ns, "link", "set", dev, "up")
        yield appliance_ns, meters_ns
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


def test_broadcast_who_is_finds_every_meter_on_the_segment(
    segment: tuple[str, str], tmp_path: Path
) -> None:
    appliance_ns, meters_ns = segment
    hosts = [f"--host={NET}.{h}/24" for h in METER_HOSTS]
    meters = subprocess.Popen(
        ["ip", "netns", "exec", meters_ns, sys.executable, "-m", "appliance", "simulate",
         f"--count={len(METER_HOSTS)}", "--base-port=47808",
         f"--first-instance={FIRST_INSTANCE}", "--points=4", *hosts],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        log = _wait_for_lines(meters, "up at", len(METER_HOSTS), 60)
        assert log.count("up at") == len(METER_HOSTS), log
        output = tmp_path / "meters.json"
        discovery = subprocess.run(
            ["ip", "netns", "exec", appliance_ns, sys.executable, "-m", "appliance", "discover",
             f"--local-address={NET}.1/24:47808", "--timeout=2", f"--output={output}"],
            check=False, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert discovery.returncode == 0, discovery.stdout + discovery.stderr
        found = json.loads(output.read_text())
    finally:
        meters.terminate()
        meters.wait(10)
    assert sorted(m["device_instance"] for m in found) == [
        FIRST_INSTANCE + i for i in range(len(METER_HOSTS))
    ]
    assert sorted(m["address"] for m in found) == [f"{NET}.{h}" for h in METER_HOSTS]
    assert all(len(m["points"]) == 4 for m in found), found
