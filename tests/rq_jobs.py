"""Jobs the worker watchdog tests queue (importable by the worker: it runs from the checkout)."""

from __future__ import annotations

import signal
import time


def sleep_for(seconds: float) -> str:
    """A healthy job that simply takes long."""
    time.sleep(seconds)
    return "slept"


def stuck(seconds: float) -> None:
    """A job RQ's timeout cannot stop, as a job stuck inside C code would be: SIGALRM, RQ's
    death penalty, is blocked for as long as it runs."""
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
    time.sleep(seconds)
