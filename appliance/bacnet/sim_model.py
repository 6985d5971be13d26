"""What a simulated energy meter measures, as a function of (its clock's) time.

Values are computed from the timestamp rather than accumulated, so a meter's live present-values
and its trend log's history agree, whatever clock the test or the demo gives it: the energy
counter is the exact integral of power, so it only increases, and a week of history is the same
numbers whenever it is asked for.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping

EPOCH = 1_767_225_600.0  # 2026-01-01T00:00:00Z: where the counters were at their start value


class MeterModel:
    """Plausible values that move with time; energy integrates power so it only increases."""

    def __init__(self, instance: int) -> None:
        rng = random.Random(instance)
        self._rng = rng
        self._base_kw = 20.0 + rng.random() * 80.0
        self._phase = rng.random() * math.tau
        self._energy0 = 1000.0 + rng.random() * 9000.0
        self._export0 = rng.random() * 100.0

    def _kw(self, t: float) -> float:
        return self._base_kw * (1.0 + 0.25 * math.sin(t / 95.0 + self._phase))

    def _kwh(self, t: float) -> float:
        """The integral of the noiseless power from EPOCH to t, in kWh."""
        span = t - EPOCH
        wave = (
            0.25 * 95.0 * (math.cos(EPOCH / 95.0 + self._phase) - math.cos(t / 95.0 + self._phase))
        )
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
