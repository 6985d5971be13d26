"""Which appliance image this system was built from: ``/etc/meterit-image-release``.

The image build writes it (``IMAGE_ID``, ``IMAGE_VERSION``, ``IMAGE_BUILT``, ``IMAGE_FORM`` in
os-release syntax); an appliance installed from the packages alone has none. Not in
``/etc/os-release``: base-files owns that, and its next upgrade would drop our fields.
"""

from __future__ import annotations

import shlex
from pathlib import Path

RELEASE_FILE = Path("/etc/meterit-image-release")
MAX_BYTES = 4096


def read_release(path: Path = RELEASE_FILE) -> dict[str, str]:
    try:
        text = path.read_text(encoding="utf-8")[:MAX_BYTES]
    except (OSError, UnicodeDecodeError):
        return {}
    fields: dict[str, str] = {}
    for line in text.splitlines():
        name, sep, value = line.partition("=")
        if sep and name.strip().isidentifier() and not name.startswith("#"):
            try:
                parts = shlex.split(value)
            except ValueError:
                continue
            fields[name.strip()] = parts[0] if parts else ""
    return fields


def image_version(path: Path = RELEASE_FILE) -> str | None:
    """``IMAGE_VERSION`` (with its form, e.g. ``0.1.0+202612020010 (disk)``), None without an image."""
    release = read_release(path)
    version = release.get("IMAGE_VERSION")
    if not version:
        return None
    form = release.get("IMAGE_FORM", "rootfs")
    return f"{version} ({form})"
