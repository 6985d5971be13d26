"""A private PostgreSQL cluster (:mod:`tests.private_postgres`) whose data directory is on a
small tmpfs the test mounts, so that the disk can really fill up, and be freed, under a running
server. Needs root (``mount``) and the PostgreSQL 15 server binaries."""

from __future__ import annotations

import errno
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.ports import free_tcp_port
from tests.private_postgres import PG_BIN, PrivateCluster, pg

# no vacuum freeing a page mid-test: a full disk stays full until the test frees it
SETTINGS = "autovacuum = off\nfsync = off\n"


def unavailable() -> str | None:
    """Why this machine cannot run one, or None."""
    if os.geteuid() != 0:
        return "mounting a tmpfs needs root"
    if not (PG_BIN / "initdb").exists():
        return f"no PostgreSQL 15 server binaries in {PG_BIN}"
    return None


class TmpfsPostgres:
    def __init__(self, size_mb: int = 80) -> None:
        owner = pwd.getpwnam("postgres")
        self.mount = Path(tempfile.mkdtemp(prefix="meterit-tmpfs-"))
        subprocess.run(
            [
                *("mount", "-t", "tmpfs", "-o"),
                f"size={size_mb}M,mode=0700,uid={owner.pw_uid},gid={owner.pw_gid}",
                *("meterit-test", str(self.mount)),
            ],
            check=True,
        )
        self.filler = self.mount / "filler"
        self.cluster = PrivateCluster(self.mount / "data", free_tcp_port())
        self.url = self.cluster.admin_url
        try:
            pg("initdb", "-D", str(self.cluster.data), "-A", "trust", "-U", "postgres", "--no-sync")
            with (self.cluster.data / "postgresql.auto.conf").open("a") as conf:
                conf.write(SETTINGS)
            self.cluster.start()
        except BaseException:
            self.close()
            raise

    def fill(self) -> int:
        """Take every free byte of the tmpfs; returns how many were taken."""
        taken = 0
        with self.filler.open("wb", buffering=0) as out:
            for chunk in (1 << 20, 4096, 1):
                block = b"\0" * chunk
                while True:
                    try:
                        taken += out.write(block) or 0
                    except OSError as err:
                        if err.errno != errno.ENOSPC:
                            raise
                        break
        return taken

    def free(self) -> None:
        self.filler.unlink(missing_ok=True)

    def close(self) -> None:
        self.free()
        self.cluster.stop()  # also removes the data directory
        subprocess.run(["umount", str(self.mount)], check=False)
        shutil.rmtree(self.mount, ignore_errors=True)
