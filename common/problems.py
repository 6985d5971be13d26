"""How a refused document says what is wrong: a list of (field, reason).

The field is a path inside the document (``points[2].object``, ``meters[3].state``); each caller
words the list for its reader (an installer's file, an API answer, a form, a log line).
"""

from __future__ import annotations

from typing import Any

Problem = tuple[str, str]

MAX_SHOWN = 60


def show(value: Any, limit: int = MAX_SHOWN) -> str:
    """A bad value as a reason quotes it, briefly and safely.

    A plain ``repr`` of whatever arrived is unsafe in a reason: a 10 MiB string would be
    echoed, stored with the batch's answer and logged whole, and a list nested a thousand deep
    raises ``RecursionError`` while being described. So text and numbers are shown (cut to
    ``limit``, saying how long they were), containers only by kind and size; nothing recurses.
    """
    if value is None or isinstance(value, bool | float):
        return repr(value)
    if isinstance(value, str):
        if len(value) <= limit:
            return repr(value)
        return f"{value[:limit]!r}... ({len(value)} characters)"
    if isinstance(value, int):
        # a huge int's repr is slow to build and may be refused (int_max_str_digits)
        return repr(value) if value.bit_length() <= 160 else f"a {value.bit_length()}-bit number"
    if isinstance(value, dict):
        return f"an object with {len(value)} field{'' if len(value) == 1 else 's'}"
    if isinstance(value, list | tuple):
        return f"a list of {len(value)} item{'' if len(value) == 1 else 's'}"
    return f"a {type(value).__name__}"
