"""The pools' checkout check (``common.pool.CheckoutCheck``): no round trip for a connection
used a moment ago, yet a connection the server killed is replaced before a caller gets it."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

from common.pool import CheckoutCheck, server_spoke


def terminate(admin_url: str, pid: int) -> None:
    with psycopg.connect(admin_url, autocommit=True) as admin:
        # waits (up to 5 s) until the backend is gone: its goodbye is on the socket by then
        assert admin.execute("SELECT pg_terminate_backend(%s, 5000)", (pid,)).fetchone() == (True,)


def test_an_idle_connection_speaks_only_when_the_server_ended_it(
    pg_admin_url: str, central_db_url: str
) -> None:
    with psycopg.connect(central_db_url) as conn:
        conn.execute("SELECT 1").fetchone()
        conn.rollback()
        assert not server_spoke(conn)
        terminate(pg_admin_url, conn.info.backend_pid)
        assert server_spoke(conn)


def test_a_killed_connection_is_replaced_at_checkout_and_a_recent_one_is_not_queried(
    pg_admin_url: str, central_db_url: str
) -> None:
    now = [1000.0]
    checked: list[int] = []

    def full_check(conn: psycopg.Connection[Any]) -> None:
        checked.append(conn.info.backend_pid)
        ConnectionPool.check_connection(conn)

    check = CheckoutCheck(idle_s=30, clock=lambda: now[0], full=full_check)
    with ConnectionPool(central_db_url, min_size=1, max_size=1, check=check, open=True) as pool:
        with pool.connection() as conn:
            first = conn.info.backend_pid
        assert checked == [first]  # new to the check: one round trip
        with pool.connection() as conn:
            assert conn.execute("SELECT pg_backend_pid()").fetchone() == (first,)
        assert checked == [first]  # used a moment ago, nothing said: no round trip
        now[0] += 31
        with pool.connection() as conn:
            pass
        assert checked == [first, first]  # last checked out more than idle_s ago: queried
        terminate(pg_admin_url, first)
        with pool.connection() as conn:
            replaced = conn.execute("SELECT pg_backend_pid()").fetchone()
        assert replaced is not None and replaced[0] != first
        assert checked[2] == first  # the killed one got the full check, and failed it
