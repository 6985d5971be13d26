"""What the admin subcommands share: settings, one transaction, and one-line failures."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg

from central.domain_errors import Conflict, NotFound
from central.settings import load_settings
from common.config import EX_CONFIG, ConfigError
from common.db import connect

EX_USAGE = 2
EX_DATAERR = 65
EX_UNAVAILABLE = 69


def parser(prog: str, description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"meterit-central {prog}", description=description)
    p.add_argument("--database-url", help="instead of METERIT_DATABASE_URL")
    return p


@contextmanager
def transaction(database_url: str | None) -> Iterator[psycopg.Connection[Any]]:
    url = database_url or load_settings().database_url
    with connect(url) as conn, conn.transaction():
        yield conn


def run(prog: str, action: Callable[[], int]) -> int:
    """Run ``action``; known failures become one line on stderr and a sysexits code."""
    try:
        return action()
    except ConfigError as err:
        sys.stderr.write(f"meterit-central {prog}: configuration error: {err}\n")
        return EX_CONFIG
    except (NotFound, Conflict, ValueError) as err:
        sys.stderr.write(f"meterit-central {prog}: {err}\n")
        return EX_DATAERR
    except psycopg.OperationalError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        sys.stderr.write(
            f"meterit-central {prog}: cannot reach the database ({first}); "
            "check METERIT_DATABASE_URL and that PostgreSQL is running\n"
        )
        return EX_UNAVAILABLE


def subcommand(
    argv: list[str], choices: tuple[str, ...], prog: str
) -> tuple[str, list[str]] | None:
    if not argv or argv[0] not in choices:
        sys.stderr.write(f"usage: meterit-central {prog} {{{','.join(choices)}}} [ARGS...]\n")
        return None
    return argv[0], argv[1:]
