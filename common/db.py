"""Database plumbing both sides share: connections and schema migrations (yoyo)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import psycopg
from yoyo import get_backend, read_migrations

logger = logging.getLogger(__name__)


def connect(url: str, **kwargs: Any) -> psycopg.Connection[Any]:
    """A psycopg connection; ``application_name`` tells pg_stat_activity which daemon it is."""
    kwargs.setdefault("connect_timeout", 5)
    return psycopg.connect(url, **kwargs)


def _yoyo_url(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in ("postgresql", "postgres"):
        raise ValueError(f"not a PostgreSQL URL: {url!r}")
    return "postgresql+psycopg://" + rest


def migrate(url: str, migrations: Path, *, rollback: bool = False, steps: int | None = None) -> int:
    """Apply pending migrations (or roll back ``steps`` of them, all when None).

    Returns how many migrations were applied or rolled back. Applying twice is a no-op: yoyo keeps
    its own table of applied migrations and takes a lock, so two hosts starting at once are safe.
    """
    backend = get_backend(_yoyo_url(url))
    all_migrations = read_migrations(str(migrations))
    try:
        with backend.lock():
            if rollback:
                todo = backend.to_rollback(all_migrations)
                if steps is not None:
                    todo = todo[:steps]
                backend.rollback_migrations(todo)
            else:
                todo = backend.to_apply(all_migrations)
                backend.apply_migrations(todo)
    finally:
        backend.connection.close()
    done = len(todo)
    logger.info(
        "%s %d migration(s) from %s",
        "rolled back" if rollback else "applied",
        done,
        migrations.parent.name,
    )
    return done


def pending(url: str, migrations: Path) -> list[str]:
    backend = get_backend(_yoyo_url(url))
    try:
        return [m.id for m in backend.to_apply(read_migrations(str(migrations)))]
    finally:
        backend.connection.close()
