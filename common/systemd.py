"""sd_notify for the daemons: READY, WATCHDOG, STATUS and STOPPING, a no-op outside systemd."""

from __future__ import annotations

import os

import sdnotify


class Notifier:
    def __init__(self) -> None:
        self._enabled = bool(os.environ.get("NOTIFY_SOCKET"))
        self._notifier = sdnotify.SystemdNotifier() if self._enabled else None
        self._last_status = ""

    def _send(self, message: str) -> None:
        if self._notifier is not None:
            self._notifier.notify(message)

    def ready(self, status: str = "") -> None:
        self._send("READY=1" + (f"\nSTATUS={status}" if status else ""))

    def watchdog(self) -> None:
        self._send("WATCHDOG=1")

    def status(self, text: str) -> None:
        """One summary line for `systemctl status`; sent only when it changes."""
        if text != self._last_status:
            self._last_status = text
            self._send(f"STATUS={text}")

    def stopping(self) -> None:
        self._send("STOPPING=1")

    @staticmethod
    def watchdog_interval_s() -> float | None:
        """Half the unit's WatchdogSec=, as systemd recommends; None when no watchdog is set."""
        usec = os.environ.get("WATCHDOG_USEC")
        if not usec:
            return None
        return int(usec) / 2_000_000
