"""Who is calling the sync API: the site behind ``X-API-Key``, looked up once per request on
the request's connection (``central.database.request_connection``)."""

from __future__ import annotations

import logging

from flask import g, request

from central.database import request_connection
from central.errors import ApiError
from central.keys import KeyAuthError, SiteIdentity, authenticate
from common.attempts import TooManyAttempts, limiter
from common.wire import HEADER_API_KEY

logger = logging.getLogger(__name__)


def try_current_site() -> SiteIdentity | None:
    """The calling site, or None; the refusal is kept for ``current_site`` to raise."""
    if "site" not in g:
        given = request.headers.get(HEADER_API_KEY)
        # the lookup prefix (mtk_xxxxxxxx) names the "account" a key guess is counted against
        prefix = "_".join((given or "").strip().split("_")[:2])[:20] or None
        attempts = limiter("api-key")
        try:
            if given:
                attempts.check(prefix, request.remote_addr)
            g.site = authenticate(request_connection(), given)
        except TooManyAttempts as err:
            g.site = None
            g.auth_error = err
        except KeyAuthError as err:
            if given:
                attempts.failed(prefix, request.remote_addr)
            g.site = None
            g.auth_error = str(err)
            # one line per refusal: an appliance with a stale key shows up here by address
            logger.warning(
                "sync API refused %s from %s: %s", request.path, request.remote_addr, err
            )
    site: SiteIdentity | None = g.site
    return site


def current_site() -> SiteIdentity:
    site = try_current_site()
    if site is None:
        if isinstance(g.auth_error, TooManyAttempts):
            raise g.auth_error
        raise ApiError(401, g.auth_error)
    return site
