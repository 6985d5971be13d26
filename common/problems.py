"""How a refused document says what is wrong: a list of (field, reason).

The field is a path inside the document (``points[2].object``, ``meters[3].state``); each caller
words the list for its reader (an installer's file, an API answer, a form, a log line).
"""

from __future__ import annotations

from typing import Any

Problem = tuple[str, str]

MAX_SHOWN = 60


def show(value: Any) -> str:
    """A bad value as a reason quotes it, cut short: a 10 MiB string is never echoed back."""
    text = repr(value)
    return text if len(text) <= MAX_SHOWN else text[: MAX_SHOWN - 3] + "..."
