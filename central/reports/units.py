"""What the rollup and the reports agree on: which points are energy counters, the slot size the
rollup keeps, and which demand intervals a report may use."""

from __future__ import annotations

from datetime import timedelta

# Cumulative energy counters are recognised by their unit; the factor converts to kWh.
ENERGY_UNITS: dict[str, float] = {"wh": 0.001, "kwh": 1.0, "mwh": 1000.0}

SLOT = timedelta(minutes=5)  # the rollup's resolution inside an hour
SLOTS_PER_HOUR = 12

# A step between consecutive readings longer than this spans a gap: its energy is consumption
# (the counter really advanced) but cannot say when, so its interval is left out of demand.
VOID_STEP = timedelta(minutes=15)

# Demand intervals must be whole slots and divide an hour, so intervals stay on the clock.
DEMAND_MINUTES = (5, 10, 15, 20, 30, 60)
DEFAULT_DEMAND_MINUTES = 15


def kwh_factor(unit: str) -> float | None:
    """The factor to kWh of an energy counter's unit, or None for any other point."""
    return ENERGY_UNITS.get(unit.strip().lower())
