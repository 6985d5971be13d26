"""The HTTP client for central's sync API (``common.wire`` is the contract).

One ``requests`` session per job, certificate verification always on (``ca_bundle`` replaces the
system CAs), urllib3 retries with exponential backoff. Retrying a POST is safe: readings batches
carry an idempotency key and central writes with ``ON CONFLICT DO NOTHING`` on the natural key.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from itertools import takewhile
from types import TracebackType
from typing import Any, Self

import requests
from requests.adapters import HTTPAdapter
from urllib3.connectionpool import ConnectionPool
from urllib3.exceptions import MaxRetryError, ResponseError
from urllib3.response import BaseHTTPResponse
from urllib3.util.retry import Retry

from appliance.settings import ApplianceSettings
from appliance.sync import failures
from common import wire
from common.failures import Mode
from common.heartbeat import Heartbeat

RETRIES = 5
RETRY_STATUSES = (408, 429, 500, 502, 503, 504)
CONNECT_TIMEOUT_S = 5.0
READ_TIMEOUT_S = 60.0
RETRY_AFTER_MAX_S = 60.0


class NotEnrolled(Exception):
    """central_url or api_key is not set: nothing can be synced yet."""


class CentralError(Exception):
    """Central could not be reached or refused the request; the message names the failure mode
    (``appliance.sync.failures``) and says what to do."""

    def __init__(
        self, mode: Mode, detail: str, status: int | None = None, body: Any = None
    ) -> None:
        super().__init__(failures.message(mode, detail))
        self.mode = mode
        self.status = status
        self.body = body


class _DoublingRetry(Retry):
    """Waits base, 2·base, 4·base … before the 1st, 2nd, 3rd … retry (urllib3 starts at 0).

    A ``Retry-After`` longer than ``RETRY_AFTER_MAX_S`` ends the retries at once: central's
    limiter asks for up to five minutes once a refused key has failed too often, and five such
    waits would hold the worker past the job's timeout; the next scheduled run tries again."""

    def increment(
        self,
        method: str | None = None,
        url: str | None = None,
        response: BaseHTTPResponse | None = None,
        error: Exception | None = None,
        _pool: ConnectionPool | None = None,
        _stacktrace: TracebackType | None = None,
    ) -> Self:
        wait = self.get_retry_after(response) if response is not None else None
        if wait is not None and wait > RETRY_AFTER_MAX_S:
            # as urllib3 itself raises it when retries run out (raise_on_status=False then hands
            # back central's answer); its own raise passes the same optional pool
            raise MaxRetryError(_pool, url, ResponseError(f"Retry-After {wait:.0f} s"))  # type: ignore[arg-type]
        return super().increment(method, url, response, error, _pool, _stacktrace)

    def get_backoff_time(self) -> float:
        consecutive = len(
            list(takewhile(lambda h: h.redirect_location is None, reversed(self.history)))
        )
        if consecutive == 0:
            return 0
        return float(min(self.backoff_max, self.backoff_factor * (2 ** (consecutive - 1))))


@dataclass
class Response:
    status: int
    body: Any
    etag: str | None


class CentralClient:
    def __init__(
        self,
        settings: ApplianceSettings,
        retries: int = RETRIES,
        read_timeout_s: float = READ_TIMEOUT_S,
    ) -> None:
        if not settings.central_url or not settings.api_key:
            raise NotEnrolled(
                "the appliance is not enrolled: set METERIT_CENTRAL_URL and METERIT_API_KEY"
            )
        # urllib3 warns on every retry; connectivity.py reports the failure once instead
        logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)
        self.base = settings.central_url.rstrip("/")
        self.retries = retries
        self.read_timeout_s = read_timeout_s
        self.session = requests.Session()
        retry = _DoublingRetry(
            total=retries,
            connect=retries,
            read=retries,
            status=retries,
            other=retries,
            allowed_methods=None,  # POSTs too: every write is idempotent
            status_forcelist=RETRY_STATUSES,
            backoff_factor=settings.upload_retry_backoff_s,
            backoff_max=600,
            raise_on_status=False,
            respect_retry_after_header=True,
        )
        adapter = HTTPAdapter(max_retries=retry, pool_connections=1, pool_maxsize=2)
        self.session.mount("https://", adapter)
        self.session.mount("http://", adapter)
        # passed with every request: a session's ``verify`` loses to REQUESTS_CA_BUNDLE from
        # the environment, and the configured CA must win
        self.verify: str | bool = settings.ca_bundle or True
        self.session.headers[wire.HEADER_API_KEY] = settings.api_key
        self.session.headers["User-Agent"] = "meterit-appliance"

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> CentralClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _request(self, method: str, path: str, **kwargs: Any) -> Response:
        url = self.base + path
        watch = failures.clock_watch
        sent = watch.clock()
        try:
            resp = self.session.request(
                method,
                url,
                timeout=(CONNECT_TIMEOUT_S, self.read_timeout_s),
                verify=self.verify,
                **kwargs,
            )
        except requests.exceptions.SSLError as err:
            raise CentralError(failures.TLS, f"{self.base}: {_short(err)}") from err
        except requests.exceptions.RequestException as err:
            raise CentralError(
                failures.UNREACHABLE,
                f"{self.base} did not answer after {self.retries} retries ({_short(err)})",
            ) from err
        # every answer, even a refusal, carries central's clock
        watch.observe(resp.headers.get("Date"), sent, watch.clock())
        body: Any = None
        if resp.content:
            try:
                body = resp.json()
            except ValueError:
                body = resp.text[:500]
        if resp.status_code >= 400:
            error = body.get("error") if isinstance(body, dict) else body
            refusal = "(no body)" if error is None else str(error)
            mode = failures.http_mode(resp.status_code, RETRY_STATUSES, refusal)
            detail = f"{method} {path} answered {resp.status_code}: {refusal}"
            if mode is failures.CENTRAL_FAILING:
                detail += f" (after {self.retries} retries)"
            raise CentralError(mode, detail, resp.status_code, body)
        return Response(resp.status_code, body, resp.headers.get("ETag"))

    def post_readings(self, body: bytes, idempotency_key: str) -> Response:
        return self._request(
            "POST",
            wire.SYNC_READINGS,
            data=body,
            headers={
                "Content-Type": "application/json",
                "Content-Encoding": "gzip",
                wire.HEADER_IDEMPOTENCY_KEY: idempotency_key,
                # A kept-alive connection stays with the gunicorn worker process that accepted
                # it, so the batches in flight often all went to one process and its one GIL
                # while the other idled (bench/drain.py: one process served every batch in 3
                # of 5 runs). A new connection per batch goes to whichever process accepts
                # first (both shared the work in 4 runs of 4). It costs a handshake per batch;
                # a live upload once a minute outlives central's keep-alive (30 s) anyway.
                "Connection": "close",
            },
        )

    def get_config(self, etag: str | None) -> Response:
        headers = {"If-None-Match": etag} if etag else {}
        return self._request("GET", wire.SYNC_CONFIG, headers=headers)

    def post_heartbeat(self, heartbeat: Heartbeat) -> Response:
        return self._request(
            "POST",
            wire.SYNC_HEARTBEAT,
            data=heartbeat.encode(),
            headers={"Content-Type": "application/json"},
        )


def _short(err: Exception) -> str:
    text = str(err)
    # urllib3's MaxRetryError repeats the URL and wraps the cause; the cause is what matters
    if "Caused by " in text:
        text = text.split("Caused by ", 1)[1].removesuffix(")")
    return text[:300]
