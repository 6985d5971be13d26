"""Runs the demo's processes side by side with prefixed output, and stops them all cleanly."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

logger = logging.getLogger(__name__)

_COLOURS = ("36", "32", "35", "33", "34", "31", "96", "92", "95")


@dataclass
class Service:
    name: str
    argv: Sequence[str]
    env: Mapping[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None


class Supervisor:
    """Starts services in order, prints each line as ``[name] line``, and on stop terminates them
    in reverse order (SIGTERM, then SIGKILL after a grace period)."""

    def __init__(self, colour: bool | None = None) -> None:
        self.services: list[Service] = []
        self._colour = sys.stdout.isatty() if colour is None else colour
        self._lock = threading.Lock()
        self._width = 10

    def say(self, name: str, line: str) -> None:
        index = (
            [s.name for s in self.services].index(name)
            if name in {s.name for s in self.services}
            else 0
        )
        label = f"[{name}]".ljust(self._width + 2)
        if self._colour:
            label = f"\033[{_COLOURS[index % len(_COLOURS)]}m{label}\033[0m"
        with self._lock:
            sys.stdout.write(f"{label} {line}\n")
            sys.stdout.flush()

    def start(self, service: Service) -> None:
        env = {**os.environ, **service.env, "PYTHONUNBUFFERED": "1"}
        self.services.append(service)
        self._width = max(self._width, len(service.name))
        service.process = subprocess.Popen(
            list(service.argv),
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C reaches only us; we stop the children in order
        )
        threading.Thread(target=self._pump, args=(service,), daemon=True).start()

    def _pump(self, service: Service) -> None:
        assert service.process is not None and service.process.stdout is not None
        for raw in service.process.stdout:
            self.say(service.name, raw.decode("utf-8", "replace").rstrip())

    def failed(self) -> Service | None:
        """The first service that exited on its own, if any."""
        for service in self.services:
            if service.process is not None and service.process.poll() is not None:
                return service
        return None

    def stop(self, grace_s: float = 10.0) -> None:
        for service in reversed(self.services):
            proc = service.process
            if proc is None or proc.poll() is not None:
                continue
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(grace_s)
            except subprocess.TimeoutExpired:
                self.say(service.name, f"did not stop within {grace_s:.0f} s; killing it")
                proc.kill()
                proc.wait()

    def wait(self, stop: threading.Event) -> Service | None:
        """Until ``stop`` is set or a service dies; returns the dead service, if one did."""
        while not stop.is_set():
            dead = self.failed()
            if dead is not None:
                return dead
            time.sleep(0.5)
        return None
