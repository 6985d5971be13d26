"""Who is calling the sync API: the site behind ``X-API-Key``, looked up once per request on
the request's connection (``central.database.request_connection``), behind the limiter of
failed key attempts (``common.attempts``, scope "api-key"). A batch upload's lookup also reads
the answer stored for its idempotency key (``stored_batch_answer``): a replay costs no second
round trip."""

from __future__ import annotations

import logging
from typing import Any

from flask import g, request

from central.database import request_connection
from central.errors import ApiError
from central.keys import KeyAuthError, SiteIdentity, authenticate_batch
from common.attempts import TooManyAttempts, limiter
from common.wire import HEADER_API_KEY, HEADER_IDEMPOTENCY_KEY, MAX_IDEMPOTENCY_KEY

logger = logging.getLogger(__name__)


def key_account() -> tuple[str | None, str | None]:
    """(account, address) the request's key attempts count against: the key's lookup prefix
    (mtk_xxxxxxxx) names the "account" a guess is counted against."""
    given = request.headers.get(HEADER_API_KEY)
    return "_".join((given or "").strip().split("_")[:2])[:20] or None, request.remote_addr


def batch_idempotency_key() -> str | None:
    """The request's idempotency key if it is a batch upload with a usable one (the endpoint
    answers a missing or overlong key with its 400)."""
    if request.endpoint != "sync.readings":
        return None
    key = (request.headers.get(HEADER_IDEMPOTENCY_KEY) or "").strip()
    return key if 0 < len(key) <= MAX_IDEMPOTENCY_KEY else None


def stored_batch_answer(idempotency_key: str) -> dict[str, Any] | None:
    """The answer stored for this site's batch ``idempotency_key`` when it was committed before
    the request's authentication (read in its round trip); None: not a replay, as far as that
    lookup saw (``central.ingest`` settles a concurrent replay itself)."""
    current_site()
    if g.get("batch_key") != idempotency_key:
        return None
    answer: dict[str, Any] | None = g.get("stored_batch_answer")
    return answer


def try_current_site() -> SiteIdentity | None:
    """The calling site, or None; the refusal is kept for ``current_site`` to raise.

    A valid key's lockout (too many failed attempts for its prefix or the address) is judged
    by ``central.sync_budget.count_request``, from counters it reads in the round trip that
    counts the request; a refused key's is judged here, before the failure is counted. Either
    way a locked-out prefix or address is answered 429, whether the key is right or not."""
    if "site" not in g:
        given = request.headers.get(HEADER_API_KEY)
        g.batch_key = batch_idempotency_key()
        try:
            g.site, g.stored_batch_answer = authenticate_batch(
                request_connection(), given, g.batch_key
            )
        except KeyAuthError as err:
            g.site = None
            g.auth_error = str(err)
            if given:
                account, address = key_account()
                attempts = limiter("api-key")
                try:
                    attempts.check(account, address)
                except TooManyAttempts as locked:
                    g.auth_error = locked
                    return None
                attempts.failed(account, address)
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
