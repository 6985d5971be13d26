"""A PostgreSQL server of a test's own, its data directory on a small tmpfs the test mounts, so
that the disk can really fill up (and be freed) under a running server.

Needs root (``mount``) and the PostgreSQL 15 server binaries; the server runs as ``postgres``.
"""

from __future__ import annotations

import contextlib
import errno
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg

from tests.ports import free_tcp_port

PG_BIN = Path("/usr/lib/postgresql/15/bin")


def unavailable() -> str | None:
    """Why this machine cannot run one, or None."""
    if os.geteuid() != 0:
        return "mounting a tmpfs needs root"
    if not (PG_BIN / "initdb").exists():
        return f"no PostgreSQL 15 server binaries in {PG_BIN}"
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return "no postgres user to run the server as"
    return None


class TmpfsPostgres:
    def __init__(self, size_mb: int = 80) -> None:
        owner = pwd.getpwnam("postgres")
        self.mount = Path(tempfile.mkdtemp(prefix="meterit-tmpfs-"))
        self.run_dir = Path(tempfile.mkdtemp(prefix="meterit-pgrun-"))  # socket and server log
        os.chown(self.run_dir, owner.pw_uid, owner.pw_gid)
        subprocess.run(
            [
                *("mount", "-t", "tmpfs", "-o"),
                f"size={size_mb}M,mode=0700,uid={owner.pw_uid},gid={owner.pw_gid}",
                *("meterit-test", str(self.mount)),
            ],
            check=True,
        )
        self.data = self.mount / "data"
        self.filler = self.mount / "filler"
        self.port = free_tcp_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self.process: subprocess.Popen[bytes] | None = None
        try:
            self._as_postgres(
                PG_BIN / "initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres",
                "--no-sync", "-E", "UTF8",
            )  # fmt: skip
            self.start()
        except BaseException:
            self.close()
            raise

    def _as_postgres(self, *command: object) -> None:
        subprocess.run(
            ["runuser", "-u", "postgres", "--", *map(str, command)],
            check=True,
            stdout=subprocess.DEVNULL,
        )

    def start(self) -> None:
        with (self.run_dir / "postgres.log").open("ab") as log:
            self.process = subprocess.Popen(
                [
                    *("runuser", "-u", "postgres", "--", str(PG_BIN / "postgres")),
                    *("-D", str(self.data), "-p", str(self.port), "-k", str(self.run_dir)),
                    *("-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"),
                    # no vacuum freeing a page mid-test: a full disk stays full until freed
                    *("-c", "autovacuum=off"),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 30
        while True:
            try:
                psycopg.connect(self.url, connect_timeout=2).close()
                return
            except psycopg.OperationalError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(
                        f"private PostgreSQL did not start:\n{self.log()}"
                    ) from None
                time.sleep(0.1)

    def log(self) -> str:
        path = self.run_dir / "postgres.log"
        return path.read_text(errors="replace") if path.exists() else ""

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
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(subprocess.CalledProcessError):
                self._as_postgres(PG_BIN / "pg_ctl", "stop", "-D", self.data, "-m", "fast")
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        subprocess.run(["umount", str(self.mount)], check=False)
        shutil.rmtree(self.mount, ignore_errors=True)
        shutil.rmtree(self.run_dir, ignore_errors=True)
