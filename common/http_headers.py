"""The security headers every answer of both web UIs carries (central and the local UI).

One policy for both: pages load scripts, styles and images only from their own origin (no
inline script or style, so an injected ``<script>`` or ``style=`` does nothing), may not be
framed (clickjacking), content types are not sniffed, and a link followed to another site does
not leak the page's URL (the explorer's URL names sites and data points). JSON answers get the
same headers: they cost nothing and keep a mis-served answer from being read as a page.

``Retry-After`` means "come back then" and only a 429 or 503 says that; the rate limiter adds
it to every answer, so it is taken off the others here.
"""

from __future__ import annotations

from flask import Flask, Response

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
}
RETRY_STATUSES = frozenset({429, 503})


def secure(response: Response) -> Response:
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)
    if response.status_code not in RETRY_STATUSES:
        response.headers.pop("Retry-After", None)
    return response


def init_app(app: Flask) -> None:
    """Register before any extension that adds headers (Flask runs after-request functions
    in reverse order of registration, so this one sees their headers)."""
    app.after_request(secure)
