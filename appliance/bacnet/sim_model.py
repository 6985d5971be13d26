"""What a simulated energy meter measures, as a function of (its clock's) time.

Values are computed from the timestamp rather than accumulated, so a meter's live present-values
and its trend log's history agree, whatever clock the test or the demo gives it: the energy
counter is the exact integral of power since the model's origin (the oldest record its trend
log holds), so it only increases. Counters stay small enough (tens of thousands of kWh) for the
Real (float32) a present-value is sent as to show every poll's increase; like a real meter
replaced, a simulator started again later starts from a later origin.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping


class MeterModel:
    """Plausible values that move with time; energy integrates power so it only increases."""

    def __init__(self, instance: int, origin: float) -> None:
        """``origin``: the POSIX time at which the counters had their start values."""
        rng = random.Random(instance)
        self._origin = origin
        self._rng = rng
        self._base_kw = 20.0 + rng.random() * 80.0
        self._phase = rng.random() * math.tau
        self._energy0 = 1000.0 + rng.random() * 9000.0
        self._export0 = rng.random() * 100.0

    def _kw(self, t: float) -> float:
        return self._base_kw * (1.0 + 0.25 * math.sin(t / 95.0 + self._phase))

    def _kwh(self, t: float) -> float:
        """The integral of the noiseless power from the origin to t, in kWh."""
        span = t - self._origin
        phase = self._phase
        wave = 0.25 * 95.0 * (math.cos(self._origin / 95.0 + phase) - math.cos(t / 95.0 + phase))
        return self._base_kw * (span + wave) / 3600.0

    def sample_at(self, t: float, noise: bool = True) -> dict[str, float]:
        """Every catalog value at POSIX time ``t``; ``noise=False`` gives the smooth values a
        trend log records (the same at every ask)."""
        jitter = self._rng.uniform if noise else (lambda low, high: 0.0)
        kw = self._kw(t) + jitter(-0.5, 0.5)
        volts = 230.0 + jitter(-2.0, 2.0)
        pf = 0.92 + 0.05 * math.sin(t / 300.0 + self._phase)
        amps = kw * 1000.0 / (3.0 * volts * pf)
        energy = self._energy0 + self._kwh(t)
        values = {
            "energy_kwh": energy,
            "power_kw": kw,
            "power_factor": pf,
            "frequency_hz": 50.0 + jitter(-0.03, 0.03),
            "reactive_power_kvar": kw * math.tan(math.acos(pf)),
            "apparent_power_kva": kw / pf,
            "current_neutral_a": abs(self._rng.gauss(0.0, 1.5)) if noise else 0.5,
            "energy_export_kwh": self._export0 + 0.01 * self._kwh(t),
        }
        for phase in ("l1", "l2", "l3"):
            values[f"voltage_{phase}_v"] = volts + jitter(-1.0, 1.0)
            values[f"current_{phase}_a"] = amps * (1.0 + jitter(-0.05, 0.05))
            values[f"power_{phase}_kw"] = kw / 3.0
        for pair in ("l1_l2", "l2_l3", "l3_l1"):
            values[f"voltage_{pair}_v"] = volts * math.sqrt(3.0)
        return values

    def value(self, name: str, sample: Mapping[str, float]) -> float:
        if name in sample:
            return sample[name]
        return 2.0 + self._rng.random() * 3.0  # thd_*_pct
