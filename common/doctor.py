"""``doctor``: what both sides' health checks share — the result type, its renderers, the exit
status, and the checks that are the same on both sides (database, Redis, disk, systemd units).

Each side's module (``appliance/doctor.py``, ``central/doctor.py``) lists its checks; every check
is one line: ok / warn / fail / skip, what is wrong, and the fix. A check that raises becomes a
``fail`` line naming the exception, so one broken piece never hides the others.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import redis

from common import db
from common.config import load_or_report

logger = logging.getLogger(__name__)

Status = Literal["ok", "warn", "fail", "skip"]
EXIT = {"ok": 0, "skip": 0, "warn": 1, "fail": 2}
TIMEOUT_S = 5


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    detail: str
    fix: str = ""


CheckFn = Callable[[], "Check | list[Check]"]


def run(checks: Iterable[tuple[str, CheckFn]]) -> list[Check]:
    results: list[Check] = []
    for name, fn in checks:
        try:
            got = fn()
        except Exception as err:  # a check must never hide the others
            logger.debug("doctor check %s raised", name, exc_info=True)
            got = Check(name, "fail", f"the check itself failed: {first_line(err)}")
        results.extend(got if isinstance(got, list) else [got])
    return results


def exit_status(results: Sequence[Check]) -> int:
    return max((EXIT[r.status] for r in results), default=0)


def render_text(results: Sequence[Check]) -> str:
    width = max((len(r.name) for r in results), default=0)
    lines = []
    for r in results:
        line = f"{r.status.upper():4}  {r.name.ljust(width)}  {r.detail}"
        if r.fix and r.status in ("warn", "fail"):
            line += f" — fix: {r.fix}"
        lines.append(line)
    return "\n".join(lines) + "\n"


def render_json(results: Sequence[Check]) -> str:
    worst = {0: "ok", 1: "warn", 2: "fail"}[exit_status(results)]
    return json.dumps({"status": worst, "checks": [asdict(r) for r in results]}, indent=2) + "\n"


def main(
    side: str,
    load_settings: Callable[[], Any],
    checks: Callable[[Any], list[tuple[str, CheckFn]]],
    argv: list[str],
) -> int:
    """The ``doctor`` subcommand of either side: 0 all ok, 1 a warning, 2 a failure."""
    parser = argparse.ArgumentParser(
        prog=f"meterit-{side} doctor",
        description="Check everything this side needs, one line each; exit 0 ok, 1 warn, 2 fail.",
    )
    parser.add_argument("--json", action="store_true", help="print the checks as JSON")
    args = parser.parse_args(argv)
    settings = load_or_report(load_settings, f"meterit-{side}")
    if settings is None:
        results = [
            Check(
                "settings",
                "fail",
                "the settings do not load (the line above says which)",
                f"correct it in /etc/meterit/{side}.env or the environment",
            )
        ]
    else:
        results = [Check("settings", "ok", "loaded and valid"), *run(checks(settings))]
    sys.stdout.write(render_json(results) if args.json else render_text(results))
    return exit_status(results)


# -- checks both sides run -----------------------------------------------------------------------


def first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0][:300] if text else type(err).__name__


def database(url: str, migrations: Path, side: str) -> Check:
    try:
        with db.connect(url, connect_timeout=TIMEOUT_S) as conn:
            conn.execute("SELECT 1")
    except Exception as err:
        return Check(
            "database",
            "fail",
            f"unreachable: {first_line(err)}",
            "start PostgreSQL (systemctl start postgresql) or correct METERIT_DATABASE_URL",
        )
    todo = db.pending(url, migrations)
    if todo:
        return Check(
            "database",
            "fail",
            f"reachable, {len(todo)} migration(s) not applied ({todo[0]} …)",
            f"meterit-{side} migrate",
        )
    return Check("database", "ok", "reachable, schema up to date")


def redis_check(url: str, role: str) -> Check:
    client = redis.Redis.from_url(url, socket_timeout=TIMEOUT_S, socket_connect_timeout=TIMEOUT_S)
    try:
        client.ping()
    except redis.RedisError as err:
        return Check(
            "redis",
            "fail",
            f"unreachable: {first_line(err)} ({role})",
            "start Redis (systemctl start redis-server) or correct METERIT_REDIS_URL",
        )
    finally:
        client.close()
    return Check("redis", "ok", f"answers ({role})")


def disk_free(path: str) -> tuple[int, int]:
    """(free bytes, total bytes) of the file system holding ``path`` (or its nearest parent)."""
    p = Path(path)
    while not p.exists() and p != p.parent:
        p = p.parent
    usage = shutil.disk_usage(p)
    return usage.free, usage.total


def under_systemd() -> bool:
    return Path("/run/systemd/system").is_dir() and shutil.which("systemctl") is not None


def units(names: Sequence[str]) -> list[Check]:
    """Each unit active? Skipped off systemd (a container, a developer's shell), and a unit that
    is not installed on this host is skipped too, not failed."""
    if not under_systemd():
        return [Check("units", "skip", "not running under systemd; units not checked")]
    results = []
    for unit in names:
        done = subprocess.run(
            ["systemctl", "show", "--property=LoadState,ActiveState", unit],
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
            check=False,
        )
        props = dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)
        state = props.get("ActiveState", "unknown")
        if props.get("LoadState") == "not-found":
            results.append(Check(f"unit {unit}", "skip", "not installed on this host"))
        elif state == "active":
            results.append(Check(f"unit {unit}", "ok", "active"))
        else:
            results.append(
                Check(
                    f"unit {unit}",
                    "fail",
                    state,
                    f"journalctl -u {unit} -n 50, then systemctl restart {unit}",
                )
            )
    return results


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"
