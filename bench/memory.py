"""Appliance memory benchmark: every edge unit together, with 100 meters, against DESIGN's 300 MB.

Run with ``.venv/bin/python -m bench.memory`` (``--help`` for sizes). It runs ``meterit-central
demo`` in a temporary folder (embedded PostgreSQL and Redis, so nothing of yours is touched, but
the demo's fixed ports must be free) with 100 simulated meters of 10 points, waits until the
collector has read every meter, then samples for a while, once a second, the memory of the edge
units exactly as systemd would count them: each unit's process with everything below it
(gunicorn's workers, RQ's work horse while a job runs). The local UI's meter API is asked once
a second meanwhile, so the UI is measured working, not idle.

It prints, per unit, the largest RSS and PSS seen (PSS splits pages shared between processes,
such as a gunicorn master's and its workers', so it is what the units really cost; RSS is
what DESIGN's target names) and the largest total seen in one sample. Reference, in the same
run: the RSS of a bare Python interpreter (``python -c``), the floor of any Python process.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
UNITS = ("collector", "worker", "web", "mcp")  # the edge units, as the demo names them
WEB = "http://127.0.0.1:8080"
TARGET_MB = 300


def _children() -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            out.setdefault(ppid, []).append(int(stat.parent.name))
    return out


def _tree(pid: int, children: dict[int, list[int]]) -> Iterator[int]:
    yield pid
    for child in children.get(pid, []):
        yield from _tree(child, children)


def _memory_kb(pid: int) -> tuple[int, int]:
    """(RSS, PSS) of one process in kB; (0, 0) if it is gone."""
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return 0, 0
    rss = re.search(r"^Rss:\s+(\d+)", text, re.M)
    pss = re.search(r"^Pss:\s+(\d+)", text, re.M)
    return (int(rss.group(1)) if rss else 0), (int(pss.group(1)) if pss else 0)


def unit_pids(demo_pid: int) -> dict[str, int]:
    """The demo's child process of each edge unit (``python -m appliance <unit>``; the web UI
    exec()s gunicorn with ``web/gunicorn.conf.py``)."""
    found: dict[str, int] = {}
    for pid in _children().get(demo_pid, []):
        try:
            args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        words = [a.decode(errors="replace") for a in args]
        if "appliance" in words and len(words) > words.index("appliance") + 1:
            unit = words[words.index("appliance") + 1]
            if unit in UNITS:
                found[unit] = pid
        elif any(w.endswith("web/gunicorn.conf.py") for w in words):
            found["web"] = pid
    return found


def sample(units: dict[str, int]) -> dict[str, tuple[int, int, int]]:
    """Per unit: (RSS kB, PSS kB, processes) of its whole process tree."""
    children = _children()
    out: dict[str, tuple[int, int, int]] = {}
    for unit, pid in units.items():
        pids = list(_tree(pid, children))
        mem = [_memory_kb(p) for p in pids]
        out[unit] = (sum(m[0] for m in mem), sum(m[1] for m in mem), len(pids))
    return out


def bare_python_rss_kb() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        time.sleep(1.0)
        return _memory_kb(proc.pid)[0]
    finally:
        proc.kill()
        proc.wait()


def wait_for_meters(password: str, meters: int, timeout: float) -> float:
    """Seconds until the local UI reports every meter reachable."""
    t0 = time.monotonic()
    reachable = 0
    while time.monotonic() - t0 < timeout:
        with contextlib.suppress(requests.RequestException, ValueError, KeyError):
            answer = requests.get(f"{WEB}/api/local/meters", auth=("admin", password), timeout=10)
            reachable = sum(m["state"] == "reachable" for m in answer.json()["meters"])
            if reachable >= meters:
                return time.monotonic() - t0
        time.sleep(2)
    raise SystemExit(f"only {reachable} of {meters} meters reachable after {timeout:.0f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.memory", description=__doc__.split("\n\n")[0])
    parser.add_argument("--meters", type=int, default=100)
    parser.add_argument("--seconds", type=int, default=90, help="how long to sample")
    parser.add_argument("--poll-interval", type=int, default=10)
    args = parser.parse_args(argv)

    folder = Path(tempfile.mkdtemp(prefix="meterit-bench-memory-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("METERIT_")}
    log = (folder / "demo.log").open("wb")
    demo = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "central",
            "demo",
            "--dir",
            str(folder / "demo"),
            "--meters",
            str(args.meters),
            "--poll-interval",
            str(args.poll_interval),
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        password_file = folder / "demo" / "web-password"
        deadline = time.monotonic() + 120
        while not password_file.exists() and demo.poll() is None:
            if time.monotonic() > deadline:
                raise SystemExit("the demo did not start within 120 s; see " + log.name)
            time.sleep(0.5)
        if demo.poll() is not None:
            print((folder / "demo.log").read_text()[-3000:], file=sys.stderr)
            raise SystemExit(f"the demo exited with {demo.returncode}")
        password = password_file.read_text().strip()
        took = wait_for_meters(password, args.meters, timeout=180)
        print(
            f"{args.meters} simulated meters x 10 points, polled every {args.poll_interval} s, "
            f"all reachable {took:.0f} s after the local UI answered; sampling {args.seconds} s"
        )
        units = unit_pids(demo.pid)
        missing = set(UNITS) - set(units)
        if missing:
            raise SystemExit(f"edge unit(s) not found under the demo: {sorted(missing)}")
        peak: dict[str, tuple[int, int, int]] = {u: (0, 0, 0) for u in UNITS}
        peak_total = (0, 0)
        session = requests.Session()
        session.auth = ("admin", password)
        end = time.monotonic() + args.seconds
        while time.monotonic() < end:
            with contextlib.suppress(requests.RequestException):
                session.get(f"{WEB}/api/local/meters", timeout=10)
            now = sample(units)
            for unit, (rss, pss, n) in now.items():
                old = peak[unit]
                peak[unit] = (max(old[0], rss), max(old[1], pss), max(old[2], n))
            peak_total = (
                max(peak_total[0], sum(v[0] for v in now.values())),
                max(peak_total[1], sum(v[1] for v in now.values())),
            )
            time.sleep(1.0)
        bare = bare_python_rss_kb()
        processes = sum(v[2] for v in peak.values())
        print(f"{'unit':<10} {'processes':>9} {'RSS MB':>8} {'PSS MB':>8}   (largest seen)")
        for unit in UNITS:
            rss, pss, n = peak[unit]
            print(f"{unit:<10} {n:>9} {rss / 1024:>8.1f} {pss / 1024:>8.1f}")
        rss_mb, pss_mb = peak_total[0] / 1024, peak_total[1] / 1024
        print(f"{'all edge':<10} {processes:>9} {rss_mb:>8.1f} {pss_mb:>8.1f}   (largest sample)")
        print(
            f"reference: a bare Python interpreter {bare / 1024:.1f} MB RSS; the edge units take "
            f"{rss_mb / (bare / 1024):.1f}x that ({processes} processes at most)"
        )
        met = rss_mb <= TARGET_MB
        print(f"target (all edge units <= {TARGET_MB} MB RSS): {'met' if met else 'NOT met'}")
        return 0 if met else 1
    finally:
        demo.send_signal(signal.SIGINT)
        try:
            demo.wait(timeout=60)
        except subprocess.TimeoutExpired:
            demo.kill()
        log.close()
        subprocess.run(["rm", "-rf", str(folder)], check=False)


if __name__ == "__main__":
    sys.exit(main())
