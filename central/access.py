"""``require(role)``: the one role check in front of every view, in the API and the UI alike.

Who is calling depends on the face: the operator API reads an ``Authorization`` header
(``central.auth``), the UI a session cookie (``central.ui.users``). Each blueprint names its
way once with ``identify(bp, who)``; ``who`` returns the caller or raises the face's own
"sign in first" (a JSON 401, a redirect to the login page). A caller below the role gets 403,
which each face renders its own way (JSON error, error page).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import ParamSpec, Protocol, TypeVar

from flask import Blueprint, request
from werkzeug.exceptions import Forbidden

from central.users import RANK, can

P = ParamSpec("P")
R = TypeVar("R")


class Caller(Protocol):
    @property
    def email(self) -> str: ...

    @property
    def role(self) -> str: ...


_who: dict[str, Callable[[], Caller]] = {}


def identify(bp: Blueprint, who: Callable[[], Caller]) -> None:
    """How ``require`` finds out who calls the views of ``bp``."""
    _who[bp.name] = who


def require(role: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """The view needs a caller of at least ``role``; 403 names the role needed."""
    if role not in RANK:
        raise ValueError(f"role {role!r}: expected one of {', '.join(RANK)}")

    def decorate(view: Callable[P, R]) -> Callable[P, R]:
        @wraps(view)
        def wrapped(*args: P.args, **kwargs: P.kwargs) -> R:
            caller = _who[request.blueprint or ""]()
            if not can(caller.role, role):
                raise Forbidden(f"this needs the {role} role; {caller.email} is {caller.role}")
            return view(*args, **kwargs)

        return wrapped

    return decorate
