"""``meterit-appliance boot-settings``: apply the FAT partition's ``meterit.toml`` at boot.

Run as root by ``meterit-boot-settings.service`` before the network and the MeterIT units
start. The whole file is checked first (``appliance.boot_settings``); a bad one changes nothing
and stays where it is, so the installer can fix it and reboot, and its problems go to the
journal, the console banner and the local UI (``status.json``-like file in the state
directory). A good one is written into ``/etc/meterit`` (and the network directory) as new
files renamed over the old, then deleted from the FAT partition: if the power fails half way,
the file is still there and the next boot applies all of it again.
"""

from __future__ import annotations

import argparse
import grp
import json
import logging
import os
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from appliance.boot_settings import FILE_NAME, BootSettings, BootSettingsError, parse
from common import logs

logger = logging.getLogger(__name__)

EX_DATAERR = 65
STATUS_FILE = "boot-settings.json"
NETWORK_FILE = "10-meterit-static.network"
METERS_PENDING = "meters-pending"
ENV_KEYS = ("METERIT_CENTRAL_URL", "METERIT_API_KEY_FILE", "METERIT_API_KEY")


@dataclass(frozen=True)
class Paths:
    boot: Path = Path("/boot/efi")
    etc: Path = Path("/etc/meterit")
    network: Path = Path("/etc/systemd/network")
    state: Path = Path("/var/lib/meterit")
    group: str = "meterit"


def _staged(path: Path, content: str, mode: int, gid: int | None) -> Path:
    """``content`` written beside ``path`` with its final mode and owner, not yet in place."""
    tmp = path.with_name(f".{path.name}.new")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(content)
        fh.flush()
        os.fsync(fh.fileno())
    os.chmod(tmp, mode)
    if gid is not None:
        os.chown(tmp, 0, gid)
    return tmp


def _env_text(current: str, settings: BootSettings, key_file: Path, at: str) -> str:
    """``appliance.env`` with the enrolment lines replaced, everything else kept as it was."""
    kept = [
        line
        for line in current.splitlines()
        if not any(line.strip().startswith(k + "=") for k in ENV_KEYS)
    ]
    return "\n".join(
        [
            *kept,
            f"# enrolled from the boot partition's {FILE_NAME} at {at}",
            f"METERIT_CENTRAL_URL={settings.central_url}",
            f"METERIT_API_KEY_FILE={key_file}",
            "",
        ]
    )


def network_text(settings: BootSettings) -> str:
    """A systemd-networkd file that wins over the image's DHCP one (80-lan.network)."""
    assert settings.network is not None
    net = settings.network
    lines = [
        f"# static address from the boot partition's {FILE_NAME}",
        "[Match]",
        "Name=en* eth*",
        "",
        "[Network]",
        f"Address={net.address}",
    ]
    if net.gateway:
        lines.append(f"Gateway={net.gateway}")
    lines += [f"DNS={d}" for d in net.dns]
    return "\n".join(lines) + "\n"


def apply(settings: BootSettings, paths: Paths) -> None:
    gid = grp.getgrnam(paths.group).gr_gid
    at = datetime.now(UTC).isoformat(timespec="seconds")
    env_path = paths.etc / "appliance.env"
    key_path = paths.etc / "api-key"
    current = env_path.read_text(encoding="utf-8") if env_path.exists() else ""
    staged: list[tuple[Path, Path]] = [
        (_staged(key_path, settings.api_key + "\n", 0o640, gid), key_path),
        (
            _staged(env_path, _env_text(current, settings, key_path, at), 0o640, gid),
            env_path,
        ),
    ]
    if settings.meters_json is not None:
        meters_path = paths.etc / "meters.json"
        staged.append((_staged(meters_path, settings.meters_json, 0o640, gid), meters_path))
        # meterit-meters-import.service loads it once the database is up, then removes this
        marker = paths.state / METERS_PENDING
        staged.append((_staged(marker, at + "\n", 0o640, None), marker))
    network_path = paths.network / NETWORK_FILE
    if settings.network is not None:
        staged.append((_staged(network_path, network_text(settings), 0o644, None), network_path))
    # Every file is complete on disk before the first one is put in place.
    for tmp, final in staged:
        tmp.replace(final)
    if settings.network is None:
        network_path.unlink(missing_ok=True)
    state_owner = paths.state.stat()
    marker = paths.state / METERS_PENDING
    if marker.exists():
        os.chown(marker, state_owner.st_uid, state_owner.st_gid)
    _sync_dir(paths.etc)


def _sync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_status(paths: Paths, ok: bool, message: str, problems: list[str]) -> None:
    """What the local UI and the console banner show; readable by the meterit user."""
    status_path = paths.state / STATUS_FILE
    body = {
        "ok": ok,
        "file": str(paths.boot / FILE_NAME),
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "message": message,
        "problems": problems,
    }
    owner = paths.state.stat()
    tmp = _staged(status_path, json.dumps(body, indent=1) + "\n", 0o640, None)
    os.chown(tmp, owner.st_uid, owner.st_gid)
    tmp.replace(status_path)


def read_status(state_dir: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((state_dir / STATUS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def run(paths: Paths) -> int:
    source = paths.boot / FILE_NAME
    if not source.exists():
        logger.info("no %s on the boot partition: nothing to apply", source)
        return 0

    def read_sibling(name: str) -> bytes | None:
        path = paths.boot / name
        return path.read_bytes() if path.is_file() else None

    try:
        settings = parse(source.read_bytes(), read_sibling)
    except BootSettingsError as err:
        message = f"{source} NOT applied, nothing changed: fix it on the boot partition and reboot"
        logger.error("%s: %s", message, "; ".join(err.problems))
        write_status(paths, False, message, err.problems)
        return EX_DATAERR
    apply(settings, paths)
    summary = settings.summary()
    source.unlink()
    if settings.meters_file:
        (paths.boot / settings.meters_file).unlink()
    _sync_dir(paths.boot)
    logger.info(
        "applied %s into %s and removed it from the boot partition: %s", source, paths.etc, summary
    )
    write_status(paths, True, f"applied {source}: {summary}", [])
    return 0


def status_line(paths: Paths) -> str:
    status = read_status(paths.state)
    if status is None:
        return ""
    if status.get("ok"):
        return str(status.get("message", ""))
    problems = "; ".join(str(p) for p in status.get("problems", []))
    return f"{status.get('message', '')}: {problems}"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="meterit-appliance boot-settings",
        description=f"Apply the boot partition's {FILE_NAME} (first-boot settings).",
    )
    parser.add_argument(
        "action", choices=("apply", "status"), help="apply it, or say what happened"
    )
    parser.add_argument("--boot-dir", type=Path, default=Paths.boot)
    parser.add_argument("--etc-dir", type=Path, default=Paths.etc)
    parser.add_argument("--network-dir", type=Path, default=Paths.network)
    parser.add_argument("--state-dir", type=Path, default=Paths.state)
    parser.add_argument("--group", default=Paths.group, help="group that may read the settings")
    args = parser.parse_args(argv)
    paths = Paths(args.boot_dir, args.etc_dir, args.network_dir, args.state_dir, args.group)
    if args.action == "status":
        line = status_line(paths)
        if line:
            sys.stdout.write(line + "\n")
        return 0
    logs.setup_logging("meterit-boot-settings")
    return run(paths)
