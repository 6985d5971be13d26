"""Where a page may send the browser after sign-in: a path on this server, nothing else.

``next=`` comes from the query string, so anyone can write it into a link. Browsers forgive a
lot in a ``Location``: they drop tabs and newlines (``/\\t/evil.example`` becomes
``//evil.example``, another host), read a backslash as a slash, and a CR/LF in a header is
refused by the server (a 500). So only printable ASCII without backslashes is kept, it must be
an absolute path, and the path must not start with ``//``; anything else means "the start page".
"""

from __future__ import annotations

from urllib.parse import urlsplit

MAX_LENGTH = 2000


def local_path(target: str | None) -> str | None:
    """``target`` when it is safe to redirect to, else None."""
    if not target or len(target) > MAX_LENGTH:
        return None
    if not all(" " < c < "\x7f" for c in target) or "\\" in target:
        return None  # controls, spaces, non-ASCII, backslashes: see the module docstring
    if not target.startswith("/") or target.startswith("//"):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return None
    return target
