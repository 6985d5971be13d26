"""Why the appliance cannot sync with central, as one of a few named modes, each with its fix.

A mode is what the journal line names (``FAILURE=key-refused``, the field the other daemons'
failure lines carry too), what the local UI and MCP
show as the last error, and what decides whether a failure is news: ``connectivity`` writes one
line when the mode changes and one when central answers again, never one per retry. The modes
that end a request are set where the request fails (``appliance.sync.central``); clock skew is
seen on answers that succeeded, so it has its own watch here.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from email.utils import parsedate_to_datetime

from common.failures import Mode
from common.logs import fields

logger = logging.getLogger(__name__)

# readings carry the appliance's clock; central's Date has 1 s resolution
SKEW_WARN_S = 30.0
SKEW_BACK_S = 10.0  # below this the clock is "back": the gap keeps a drifting clock from flapping


UNREACHABLE = Mode(
    "central-unreachable",
    "central unreachable",
    "check the site's internet link, DNS and firewall, and that central is up; readings are "
    "kept here and sent when it answers",
    "central reachable again",
    logging.WARNING,
)
TLS = Mode(
    "tls",
    "central's TLS certificate not trusted",
    "renew central's certificate, or name the CA that signs it in METERIT_CA_BUNDLE",
    "central's TLS certificate verifies again",
)
KEY_REFUSED = Mode(
    "key-refused",
    "central refuses this appliance's API key",
    "set the site's current key in METERIT_API_KEY (meterit-central key rotate SITE_ID prints "
    "a new one), then systemctl restart meterit.target",
    "central accepts the API key again",
)
CENTRAL_FAILING = Mode(
    "central-failing",
    "central is failing",
    "central's operators should check its journal; readings are kept here and resent",
    "central answers normally again",
    logging.WARNING,
)
REFUSED = Mode(
    "refused",
    "central refuses the request",
    "central's answer says what it refused; an appliance older than central may need an update",
    "central takes the requests again",
)
BAD_ANSWER = Mode(
    "bad-answer",
    "central's answer not understood",
    "check that METERIT_CENTRAL_URL is central's address and that no proxy answers in its place",
    "central's answers are understood again",
)
CLOCK_SKEW = Mode(
    "clock-skew",
    "appliance clock off",
    "enable time sync: timedatectl set-ntp true (check systemd-timesyncd or chrony)",
    "appliance clock agrees with central again",
    logging.WARNING,
)
MODES = (UNREACHABLE, TLS, KEY_REFUSED, CENTRAL_FAILING, REFUSED, BAD_ANSWER, CLOCK_SKEW)


def message(mode: Mode, detail: str) -> str:
    """The error text of a failure: its mode first (``mode_of`` reads it back), then the fix."""
    return f"{mode.what}: {detail} — {mode.fix}"


def mode_of(error: str | None) -> Mode | None:
    """The mode a stored error was written in (None for text from before the modes)."""
    for mode in MODES:
        if error and error.startswith(mode.what + ":"):
            return mode
    return None


# the start of common.attempts.TooManyAttempts' text, as central's 429 answer carries it (a test
# keeps the two equal; importing it would bring Flask into the worker)
LIMITER_REFUSAL = "too many failed attempts"


def http_mode(status: int, retry_statuses: tuple[int, ...], refusal: str) -> Mode:
    """The mode of an HTTP error answer; ``refusal`` is central's error text."""
    # central's limiter answers 429 once a key has failed too often: still a refused key
    if status in (401, 403) or (status == 429 and refusal.startswith(LIMITER_REFUSAL)):
        return KEY_REFUSED
    if status in retry_statuses:
        return CENTRAL_FAILING
    return REFUSED


def skew_s(central_date: float, sent: float, received: float) -> float:
    """How far this clock is ahead of central's (negative: behind), at least.

    Central read its clock somewhere in [date, date + 1) (the header has whole seconds), between
    our sending and our receiving; only what falls outside that window is skew, so a slow answer
    never looks like a wrong clock."""
    if sent > central_date + 1:
        return sent - (central_date + 1)
    if received < central_date:
        return received - central_date
    return 0.0


class ClockWatch:
    """Central's ``Date`` against this appliance's clock, on every answer: one line when the
    skew passes ``SKEW_WARN_S``, one when it is back under ``SKEW_BACK_S``.

    Kept in the process's memory (the worker runs every job in its own process): a restarted
    worker says it again once if the clock is still off."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self.skewed: float | None = None  # the skew last reported, while it lasts

    def observe(self, date_header: str | None, sent: float, received: float) -> None:
        if not date_header:
            return
        try:
            central = parsedate_to_datetime(date_header).timestamp()
        except (TypeError, ValueError):
            return
        skew = skew_s(central, sent, received)
        with self._lock:
            was = self.skewed
            if was is None and abs(skew) >= SKEW_WARN_S:
                self.skewed = skew
            elif was is not None and abs(skew) < SKEW_BACK_S:
                self.skewed = None
            else:
                return
        extra = fields(failure=CLOCK_SKEW.name)
        if was is None:
            logger.log(
                CLOCK_SKEW.level,
                "%s",
                message(CLOCK_SKEW, f"{_ahead(skew)} central's (its Date: {date_header})"),
                extra=extra,
            )
        else:
            logger.info("%s (it was %s central's)", CLOCK_SKEW.back, _ahead(was), extra=extra)


def _ahead(skew: float) -> str:
    return f"{abs(skew):.0f} s {'ahead of' if skew > 0 else 'behind'}"


clock_watch = ClockWatch()
