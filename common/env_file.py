"""Settings files in systemd's ``EnvironmentFile=`` form, for ``--env-file`` on both CLIs.

A unit reads ``/etc/meterit/appliance.env``; a person at a shell (or an assistant started with
``mcp --stdio``) points the same command at the same file, or at the one ``make demo`` writes,
instead of exporting each ``METERIT_*`` variable by hand. Only the plain form is read:
``NAME=value`` lines, ``#`` comments, blank lines, and a value optionally in matching quotes.
"""

from __future__ import annotations

import re
from pathlib import Path

from common.config import ConfigError

MAX_BYTES = 1 << 20  # a settings file, not a data file
_LINE = re.compile(r"^(?:export\s+)?(?P<name>[A-Za-z_][A-Za-z0-9_]*)\s*=\s*(?P<value>.*?)\s*$")


def read(path: Path) -> dict[str, str]:
    """The variables ``path`` sets; ConfigError names the file and the line it cannot read."""
    try:
        if path.stat().st_size > MAX_BYTES:
            raise ConfigError(f"--env-file {str(path)!r}: larger than {MAX_BYTES} bytes")
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"--env-file {str(path)!r}: cannot read it ({err})") from err
    found: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith(("#", ";")):
            continue
        match = _LINE.match(stripped)
        if match is None:
            raise ConfigError(
                f"--env-file {str(path)!r} line {number}: expected NAME=value, got {stripped[:60]!r}"
            )
        value = match["value"]
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        found[match["name"]] = value
    return found
