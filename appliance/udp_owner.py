"""Who holds a UDP port on this host, read from Linux's ``/proc`` (for ``doctor``'s BACnet line).

``/proc/net/udp`` and ``udp6`` list every bound UDP socket of this network namespace with its
inode; a process's ``/proc/PID/fd`` links name the socket inodes it holds. Processes of other
users are not readable unless we are root: their sockets are found, their owner is not.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")


@dataclass(frozen=True, slots=True)
class Holder:
    """A process holding the port (``pid`` None: the socket exists, its owner is not visible)."""

    pid: int | None
    argv: tuple[str, ...] = ()

    def describe(self) -> str:
        if self.pid is None:
            return "a process this user cannot see"
        return f"pid {self.pid} ({' '.join(self.argv)[:120] or '?'})"


def bound_inodes(port: int, proc: Path = PROC) -> set[int]:
    """The inodes of the UDP sockets bound to ``port`` on any local address (v4 and v6)."""
    found: set[int] = set()
    for table in ("udp", "udp6"):
        try:
            lines = (proc / "net" / table).read_text().splitlines()[1:]
        except OSError:
            continue
        for ln in lines:
            fields = ln.split()
            # sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode …
            if len(fields) < 10 or ":" not in fields[1]:
                continue
            if int(fields[1].rsplit(":", 1)[1], 16) == port:
                found.add(int(fields[9]))
    return found


def holders(port: int, proc: Path = PROC) -> list[Holder] | None:
    """The processes holding UDP ``port``: [] when nothing is bound to it, None when this host
    has no ``/proc/net/udp`` to tell (not Linux)."""
    if not (proc / "net" / "udp").exists():
        return None
    inodes = bound_inodes(port, proc)
    if not inodes:
        return []
    wanted = {f"socket:[{i}]" for i in inodes}
    seen: list[Holder] = []
    for pid_dir in proc.iterdir():
        if pid_dir.name.isdigit() and _holds(pid_dir, wanted):
            try:
                raw = (pid_dir / "cmdline").read_bytes()
            except OSError:  # gone meanwhile
                continue
            argv = tuple(raw.decode(errors="replace").split("\0")[:-1])
            seen.append(Holder(int(pid_dir.name), argv))
    return seen or [Holder(None)]


def _holds(pid_dir: Path, wanted: set[str]) -> bool:
    try:
        fds = list((pid_dir / "fd").iterdir())
    except OSError:  # another user's process, or gone meanwhile
        return False
    for fd in fds:
        try:
            if os.readlink(fd) in wanted:
                return True
        except OSError:  # closed meanwhile (the listing's own descriptor, for one)
            continue
    return False
