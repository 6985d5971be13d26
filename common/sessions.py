"""Server-side session ids for both UIs: signing out must end a session, not just forget it.

A signed cookie alone cannot be revoked: a copy taken before sign-out keeps working until it
expires. So each sign-in creates a random id, the cookie carries it (signed, as before), and the
table holds its SHA-256 (a leaked table gives no live cookie). Every request checks the id is
still there; signing out deletes it. Central's table has a ``user_id`` column (many users), the
appliance's does not (one local user), so the owner column is optional here.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta
from typing import Any

import psycopg
from psycopg import sql


def _hash(session_id: str) -> bytes:
    return hashlib.sha256(session_id.encode()).digest()


class SessionStore:
    """One table of live sessions: ``table`` (id_hash, [user_id,] created_at, expires_at)."""

    def __init__(self, table: str, with_user: bool) -> None:
        self.table = sql.Identifier(table)
        self.with_user = with_user

    def start(
        self, conn: psycopg.Connection[Any], lifetime: timedelta, user_id: int | None = None
    ) -> str:
        session_id = secrets.token_urlsafe(32)
        # expired rows go at the next sign-in: no job needed, the table stays small
        conn.execute(sql.SQL("DELETE FROM {} WHERE expires_at < now()").format(self.table))
        if self.with_user:
            conn.execute(
                sql.SQL(
                    "INSERT INTO {} (id_hash, user_id, expires_at) VALUES (%s, %s, now() + %s)"
                ).format(self.table),
                (_hash(session_id), user_id, lifetime),
            )
        else:
            conn.execute(
                sql.SQL("INSERT INTO {} (id_hash, expires_at) VALUES (%s, now() + %s)").format(
                    self.table
                ),
                (_hash(session_id), lifetime),
            )
        return session_id

    def alive(
        self, conn: psycopg.Connection[Any], session_id: str, user_id: int | None = None
    ) -> bool:
        query = sql.SQL("SELECT 1 FROM {} WHERE id_hash = %s AND expires_at > now()").format(
            self.table
        )
        params: tuple[Any, ...] = (_hash(session_id),)
        if self.with_user:
            query += sql.SQL(" AND user_id = %s")
            params += (user_id,)
        return conn.execute(query, params).fetchone() is not None

    def end(self, conn: psycopg.Connection[Any], session_id: str) -> None:
        conn.execute(
            sql.SQL("DELETE FROM {} WHERE id_hash = %s").format(self.table), (_hash(session_id),)
        )

    def end_others(
        self, conn: psycopg.Connection[Any], keep: str | None, user_id: int | None = None
    ) -> int:
        """End every session (of ``user_id``) but ``keep``; how many ended."""
        query = sql.SQL("DELETE FROM {} WHERE id_hash IS DISTINCT FROM %s").format(self.table)
        params: tuple[Any, ...] = (_hash(keep) if keep else None,)
        if self.with_user:
            query += sql.SQL(" AND user_id = %s")
            params += (user_id,)
        return conn.execute(query, params).rowcount
