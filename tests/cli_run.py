"""Running ``meterit-appliance`` / ``meterit-central`` commands as an installer would: a real
process from the checkout, with exactly the environment given."""

from __future__ import annotations

import re
import subprocess
import sys

from tests.central_fixtures import ROOT


def run_cli(side: str, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m appliance|central ARGS`` to its end (two minutes at most)."""
    return subprocess.run(
        [sys.executable, "-m", side, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def doctor(side: str, env: dict[str, str], *args: str) -> tuple[int, str]:
    """``doctor``'s exit status and everything it printed."""
    done = run_cli(side, env, "doctor", *args)
    return done.returncode, done.stdout + done.stderr


def line(output: str, name: str) -> str:
    """The doctor's line for check ``name`` (status first)."""
    found = [ln for ln in output.splitlines() if re.split(r"\s{2,}", ln)[1:2] == [name]]
    assert len(found) == 1, f"no single line for {name!r} in:\n{output}"
    return found[0]
