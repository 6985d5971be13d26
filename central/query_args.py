"""Whole-number query arguments of the operator API, checked before they reach SQL.

An id past PostgreSQL's bigint would otherwise fail in the database ("bigint out of range"):
every such argument is bounded here, and a bad one is a 400 naming the argument and its range.
"""

from __future__ import annotations

from typing import overload

from flask import request

from central.errors import ApiError

MAX_ID = 2**63 - 1  # PostgreSQL bigint


@overload
def int_arg(name: str, default: int, lo: int, hi: int) -> int: ...
@overload
def int_arg(name: str, default: None, lo: int, hi: int) -> int | None: ...


def int_arg(name: str, default: int | None, lo: int, hi: int) -> int | None:
    """``name`` from the query string, ``default`` when absent, else a whole number in [lo, hi]."""
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or not lo <= int(raw) <= hi:
        raise ApiError(400, f"{name}: expected a whole number from {lo} to {hi}")
    return int(raw)
