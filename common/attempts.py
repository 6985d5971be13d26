"""The one limiter in front of every password, key and token check, on both sides.

Each failed check counts against the account it named (an e-mail, a user name, a key prefix)
and against the client address it came from; once either has used its budget, further checks
are refused with :class:`TooManyAttempts` *before* the secret is even compared (so a guess no
longer costs an argon2 hash either), until the window ends. A correct password does not count.
The budget is per account so one user cannot be guessed from many addresses, and per address so
one client cannot try many users. The refusal carries ``retry_after`` (the faces answer 429 with
``Retry-After``), and one journal line is written when a budget runs out, not one per attempt.

Counts live in Redis where the side has one (central: shared by every gunicorn worker and host),
in memory otherwise. When Redis is away the check lets the attempt through and logs it: Redis
holds no data, and locking everyone out because of it would be worse.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from flask import Flask, current_app, request
from limits import RateLimitItem, parse
from limits.storage import RedisStorage, Storage, storage_from_string
from limits.strategies import FixedWindowRateLimiter

logger = logging.getLogger(__name__)

PER_ACCOUNT = "10 per 5 minutes"
PER_ADDRESS = "30 per 5 minutes"


class TooManyAttempts(Exception):
    """Refused before checking: too many failures for this account or address."""

    def __init__(self, retry_after: int, what: str) -> None:
        super().__init__(f"too many failed attempts for this {what}; retry in {retry_after} s")
        self.retry_after = retry_after
        self.what = what


@dataclass(frozen=True, slots=True)
class Budget:
    per_account: RateLimitItem
    per_address: RateLimitItem


class AttemptLimiter:
    """Failed credential checks of one kind (``scope``: "ui-login", "api-basic", "api-key" …),
    counted per account and per client address."""

    def __init__(
        self,
        storage_uri: str,
        scope: str,
        per_account: str = PER_ACCOUNT,
        per_address: str = PER_ADDRESS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.scope = scope
        self.budget = Budget(parse(per_account), parse(per_address))
        self._storage_uri = storage_uri
        self._storage: Storage | None = None
        self._clock = clock

    def _limiter(self) -> FixedWindowRateLimiter:
        # made on first use: a forked gunicorn worker must not share its parent's connection
        if self._storage is None:
            storage = storage_from_string(self._storage_uri)
            assert isinstance(storage, Storage)  # a sync storage: no "async+" scheme is used
            self._storage = storage
        return FixedWindowRateLimiter(self._storage)

    def _keys(
        self, account: str | None, address: str | None
    ) -> list[tuple[RateLimitItem, str, str]]:
        """(budget, namespace, key): an account's failures count within this scope (an e-mail
        and a key prefix are different accounts); an address's count across every scope, so
        a client cannot spread its guesses over passwords, tokens and keys."""
        keys = []
        if account:
            keys.append(
                (self.budget.per_account, self.scope, "account:" + account.strip().lower()[:200])
            )
        if address:
            keys.append((self.budget.per_address, "any", "address:" + address))
        return keys

    def check(self, account: str | None, address: str | None) -> None:
        """Raise TooManyAttempts when the account or the address has no budget left."""
        try:
            self._limiter()
            self.judge(account, address, self._counts(self._keys(account, address)))
        except TooManyAttempts:
            raise
        except Exception as err:  # Redis away: let it through, say so
            logger.warning("%s: attempt limiter unavailable (%s); not limiting", self.scope, err)

    def redis_keys(self, account: str | None, address: str | None) -> list[str]:
        """The Redis keys of the failures counted for the account and the address, for a caller
        that reads them in a round trip it makes anyway (the sync API's request count); it
        passes what it read to ``judge``. Empty when the counts are not in Redis."""
        self._limiter()
        storage = self._storage
        if not isinstance(storage, RedisStorage):
            return []
        keys = self._keys(account, address)
        return [storage.prefixed_key(item.key_for(space, key)) for item, space, key in keys]

    def judge(self, account: str | None, address: str | None, counts: list[int]) -> None:
        """Raise TooManyAttempts when a count (in ``redis_keys`` order) has used its budget."""
        keys = self._keys(account, address)
        for (item, space, key), used in zip(keys, counts, strict=True):
            if used >= item.amount:
                reset, _ = self._limiter().get_window_stats(item, space, key)
                retry = max(1, math.ceil(reset - self._clock()))
                raise TooManyAttempts(retry, key.partition(":")[0])

    def _counts(self, keys: list[tuple[RateLimitItem, str, str]]) -> list[int]:
        """The failures counted so far under each key: one round trip to Redis for all of
        them, one lookup each in another storage."""
        storage = self._storage
        names = [item.key_for(space, key) for item, space, key in keys]
        if isinstance(storage, RedisStorage):
            client: Any = storage.get_connection(True)  # a redis client; its protocol lacks mget
            found = client.mget([storage.prefixed_key(n) for n in names])
            return [int(v or 0) for v in found]
        assert storage is not None
        return [storage.get(n) for n in names]

    def failed(self, account: str | None, address: str | None) -> None:
        """Count one failed check; one warning when this failure uses up a budget."""
        try:
            limiter = self._limiter()
            for item, space, key in self._keys(account, address):
                limiter.hit(item, space, key)
                if not limiter.test(item, space, key):
                    reset, _ = limiter.get_window_stats(item, space, key)
                    logger.warning(
                        "%s: %d failed attempts for %s within %s; refused for %d s",
                        self.scope,
                        item.amount,
                        key,
                        f"{item.multiples} {item.GRANULARITY.name}",
                        max(1, math.ceil(reset - self._clock())),
                    )
        except Exception as err:
            logger.warning("%s: attempt limiter unavailable (%s); not counting", self.scope, err)


# -- Flask: one limiter per scope and app, counting the request's client address -------------

EXTENSION = "meterit.attempts"
T = TypeVar("T")


def redis_storage_uri(redis_url: str) -> str:
    """The ``limits`` library spells a Redis socket ``redis+unix://``."""
    if redis_url.startswith("unix://"):
        return "redis+unix://" + redis_url[len("unix://") :]
    return redis_url


def init_app(app: Flask, storage_uri: str) -> None:
    app.extensions[EXTENSION] = {"uri": storage_uri, "scopes": {}}


def limiter(scope: str) -> AttemptLimiter:
    state = current_app.extensions[EXTENSION]
    found: AttemptLimiter | None = state["scopes"].get(scope)
    if found is None:
        found = state["scopes"][scope] = AttemptLimiter(state["uri"], scope)
    return found


def guarded(scope: str, account: str | None, verify: Callable[[], T | None]) -> T | None:
    """``verify()`` (None means the credentials were wrong) behind the ``scope`` limiter of the
    current app, for the request's client address; TooManyAttempts before verifying when the
    account or the address has no budget left."""
    attempts = limiter(scope)
    address = request.remote_addr
    attempts.check(account, address)
    result = verify()
    if result is None:
        attempts.failed(account, address)
    return result
