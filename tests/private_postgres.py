"""PostgreSQL clusters of a test's own, for what the shared server must not see: a restart, a
streaming replica. Run from Debian's server binaries as the postgres user (initdb refuses root),
in a folder under /tmp (pytest's tmp_path is private to root)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg
import pytest

from tests.ports import free_tcp_port

PG_BIN = Path("/usr/lib/postgresql/15/bin")


def pg(*args: str, check: bool = True) -> None:
    """Run one of the server binaries (``initdb``, ``pg_ctl``, ``pg_basebackup``)."""
    cmd = [str(PG_BIN / args[0]), *args[1:]]
    if os.geteuid() == 0:
        cmd = ["runuser", "-u", "postgres", "--", *cmd]
    subprocess.run(cmd, check=check, capture_output=True, timeout=120)


def _new_folder(prefix: str) -> Path:
    data = Path(tempfile.mkdtemp(prefix=prefix))
    if os.geteuid() == 0:
        shutil.chown(data, "postgres")
    data.chmod(0o700)
    return data


class PrivateCluster:
    def __init__(self, data: Path, port: int) -> None:
        self.data = data
        self.port = port

    @property
    def admin_url(self) -> str:
        return self.url("postgres")

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    @classmethod
    def primary(cls) -> PrivateCluster:
        """A new cluster, started; its default ``wal_level`` (replica) lets standbys follow it."""
        if not (PG_BIN / "initdb").exists():
            pytest.skip("needs the PostgreSQL server binaries to run a private cluster")
        cluster = cls(_new_folder("meterit-pg-"), free_tcp_port())
        pg("initdb", "-D", str(cluster.data), "-A", "trust", "-U", "postgres")
        cluster.start()
        return cluster

    @classmethod
    def standby_of(cls, primary: PrivateCluster) -> PrivateCluster:
        """A hot standby streaming from ``primary``, started and accepting read-only queries."""
        cluster = cls(_new_folder("meterit-pg-standby-"), free_tcp_port())
        pg(
            "pg_basebackup",
            "-D",
            str(cluster.data),
            "-h",
            "127.0.0.1",
            "-p",
            str(primary.port),
            "-U",
            "postgres",
            "-X",
            "stream",
            "--checkpoint=fast",  # not a spread checkpoint: minutes of waiting otherwise
            "-R",  # standby.signal and primary_conninfo: it follows the primary once started
        )
        cluster.start()
        return cluster

    def start(self) -> None:
        pg(
            "pg_ctl",
            "-D",
            str(self.data),
            "-w",
            "-l",
            str(self.data / "server.log"),
            "-o",
            f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1",
            "start",
        )

    def restart(self) -> None:
        pg(
            "pg_ctl",
            "-D",
            str(self.data),
            "-l",
            str(self.data / "server.log"),
            "-m",
            "fast",
            "-w",
            "restart",
        )

    def stop(self) -> None:
        pg("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop", check=False)
        shutil.rmtree(self.data, ignore_errors=True)


def caught_up(primary: PrivateCluster, standby: PrivateCluster, timeout: float = 60) -> None:
    """Wait until the standby has replayed everything the primary has written so far."""
    with psycopg.connect(primary.admin_url, autocommit=True) as conn:
        row = conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()
    assert row is not None
    target = row[0]
    deadline = time.monotonic() + timeout
    with psycopg.connect(standby.admin_url, autocommit=True) as conn:
        while True:
            done = conn.execute(
                "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (target,)
            ).fetchone()
            if done and done[0]:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"the standby did not replay up to {target} in {timeout} s")
            time.sleep(0.05)
