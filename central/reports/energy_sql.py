"""The SQL that turns the hourly rollup into per-interval energy, and what the reports read
from it. Kept apart so the benchmark can time exactly these statements, bare.

Rule for attributing energy in time: the counter's increase between two consecutive readings
belongs to the interval in which the LATER reading falls, intervals being closed on the right,
(start, end]. So the reading at a period's first instant is its baseline, the one at its end
closes it, and consecutive periods add up exactly. A drop (counter reset, meter replaced) adds
nothing and is listed; a step over more than 15 minutes (a gap) adds its energy but leaves
its interval out of the demand figures.
"""

from __future__ import annotations

# The period's figures in ONE statement: its hours and demand intervals are materialized common
# table expressions, not temporary tables, so it runs on a hot standby as well as the primary
# (docs/scaling.md). The three answers it reads from them come back as one result, each row
# tagged by ``kind``; the columns a kind does not use are NULL:
#   p  per point: id = point, idx = its peak interval, energy, peak (energy), n = void intervals
#   s  per site and interval: id = site, idx, energy, void
#   r  per counter reset (only when ``detail``): id = point, at, n = resets, before, after
# Parameters: points int[], factors float8[] (to kWh), first_hour, start, end, interval_s,
# void_step, detail.
ENERGY_SQL = """
WITH report_hours AS MATERIALIZED ({hours}
), report_intervals AS MATERIALIZED ({intervals}
)
{point_figures}
UNION ALL
{site_intervals}
UNION ALL
{resets}
"""

# One row per point and rollup hour of the period, with the hour before it (wherever it is: the
# baseline of the first step) and the previous row's last reading.
HOURS_SQL = """
    WITH src AS (
        SELECT h.point_id, h.hour, h.first_ts, h.first_value, h.last_ts, h.last_value,
               h.slot_energy, h.void, h.resets, h.reset_ts
        FROM readings_hourly h
        WHERE h.point_id = ANY(%(points)s) AND h.hour >= %(first_hour)s AND h.hour <= %(end)s
          AND h.slot_energy IS NOT NULL
        UNION ALL
        SELECT b.* FROM unnest(%(points)s::int[]) AS p (id)
        CROSS JOIN LATERAL (
            SELECT h.point_id, h.hour, h.first_ts, h.first_value, h.last_ts, h.last_value,
                   h.slot_energy, h.void, h.resets, h.reset_ts
            FROM readings_hourly h
            WHERE h.point_id = p.id AND h.hour < %(first_hour)s AND h.slot_energy IS NOT NULL
            ORDER BY h.hour DESC LIMIT 1
        ) b
    )
    SELECT src.*, f.factor,
           lag(src.last_value) OVER w AS prev_value, lag(src.last_ts) OVER w AS prev_ts
    FROM src JOIN unnest(%(points)s::int[], %(factors)s::float8[]) AS f (point_id, factor)
        USING (point_id)
    WINDOW w AS (PARTITION BY src.point_id ORDER BY src.hour)"""

# One row per (point, demand interval index) with energy in kWh.
INTERVALS_SQL = """
    WITH steps AS (
        {in_hour}
        UNION ALL
        -- the step from the previous row's last reading to this row's first
        SELECT point_id, factor,
               hour + (ceil(extract(epoch FROM first_ts - hour) / 300) - 1) * interval '5 minutes',
               greatest(first_value - prev_value, 0),
               first_value < prev_value OR first_ts - prev_ts > %(void_step)s
        FROM report_hours WHERE prev_value IS NOT NULL
    )
    SELECT point_id,
           floor(extract(epoch FROM slot_start - %(start)s) / %(interval_s)s)::int AS idx,
           sum(energy * factor) AS energy, bool_or(void) AS void
    FROM steps
    WHERE slot_start >= %(start)s AND slot_start < %(end)s
    GROUP BY 1, 2"""

# In-hour energy by 5-minute slot: any period and interval.
_SLOT_STEPS = """SELECT point_id, factor, hour + (s.i - 1) * interval '5 minutes' AS slot_start,
               s.e AS energy, (void >> (s.i - 1)::int) & 1 = 1 AS void
        FROM report_hours, unnest(slot_energy) WITH ORDINALITY AS s (e, i)
        WHERE s.e <> 0 OR (void >> (s.i - 1)::int) & 1 = 1"""

# When every hour starts an interval (the period starts on an interval boundary of its UTC
# hour), each hour's intervals are sums of whole slots: a third of the rows to group.
_INTERVAL_STEPS = """SELECT point_id, factor,
               hour + k * %(interval_s)s * interval '1 second' AS slot_start,
               {energy} AS energy, (void >> (k * {spi})) & {mask} <> 0 AS void
        FROM report_hours CROSS JOIN generate_series(0, {per_hour} - 1) AS k"""

# Per point: energy, and its peak demand interval (highest energy among intervals that are not
# void; the earliest on a tie).
POINT_FIGURES_SQL = """SELECT 'p', point_id,
       (array_agg(idx ORDER BY energy DESC, idx) FILTER (WHERE NOT void))[1],
       sum(energy), max(energy) FILTER (WHERE NOT void), NULL::boolean,
       count(*) FILTER (WHERE void), NULL::timestamptz, NULL::float8, NULL::float8
FROM report_intervals GROUP BY point_id"""

# Per site and interval: the site's total energy, and whether any of its meters makes the
# interval void. Coincident demand is the site's peak of these.
SITE_INTERVALS_SQL = """SELECT 's', m.site_id, i.idx, sum(i.energy), NULL, bool_or(i.void), NULL, NULL,
       NULL, NULL
FROM report_intervals i
JOIN meter_points p ON p.id = i.point_id
JOIN meters m ON m.id = p.meter_id
GROUP BY m.site_id, i.idx"""

# Where counters dropped within the period: inside an hour (counted by the rollup, first
# timestamp kept) or between an hour's last reading and the next one's first (both values).
RESETS_SQL = """SELECT 'r', point_id, NULL, NULL, NULL, NULL, resets, reset_ts, NULL, NULL
FROM report_hours
WHERE %(detail)s AND resets > 0 AND reset_ts > %(start)s AND reset_ts <= %(end)s
UNION ALL
SELECT 'r', point_id, NULL, NULL, NULL, NULL, 1, first_ts, prev_value, first_value
FROM report_hours
WHERE %(detail)s AND first_value < prev_value AND first_ts > %(start)s AND first_ts <= %(end)s"""


def energy_sql(slots_per_interval: int | None) -> str:
    """ENERGY_SQL summing whole intervals per hour (``slots_per_interval``) or, for a period
    whose intervals straddle hours (None), slot by slot."""
    if slots_per_interval is None:
        in_hour = _SLOT_STEPS
    else:
        spi = slots_per_interval
        energy = " + ".join(f"slot_energy[k * {spi} + {j + 1}]" for j in range(spi))
        in_hour = _INTERVAL_STEPS.format(
            energy=energy, spi=spi, mask=(1 << spi) - 1, per_hour=12 // spi
        )
    return ENERGY_SQL.format(
        hours=HOURS_SQL,
        intervals=INTERVALS_SQL.format(in_hour=in_hour),
        point_figures=POINT_FIGURES_SQL,
        site_intervals=SITE_INTERVALS_SQL,
        resets=RESETS_SQL,
    )


# Completeness of every point (counters or not): which demand intervals hold at least one
# reading (intervals closed on the left here: a reading at 10:15 is in 10:15-10:30), as runs
# of missing intervals. Parameters: points int[], first_hour, start, end, interval_s.
PRESENCE_SQL = """
WITH present AS (
    {present}
), runs AS (
    SELECT point_id, idx, lag(idx) OVER (PARTITION BY point_id ORDER BY idx) AS prev
    FROM present
)
SELECT point_id, count(*), max(idx),
       array_agg(coalesce(prev + 1, 0) ORDER BY idx) FILTER (WHERE idx - coalesce(prev, -1) > 1),
       array_agg(idx ORDER BY idx) FILTER (WHERE idx - coalesce(prev, -1) > 1)
FROM runs GROUP BY point_id
"""

_PRESENT_SLOTS = """SELECT DISTINCT h.point_id,
           floor(extract(epoch FROM h.hour + g.i * interval '5 minutes' - %(start)s)
                 / %(interval_s)s)::int AS idx
    FROM readings_hourly h CROSS JOIN generate_series(0, 11) AS g (i)
    WHERE h.point_id = ANY(%(points)s) AND h.hour >= %(first_hour)s AND h.hour < %(end)s
      AND (h.present >> g.i) & 1 = 1
      AND h.hour + g.i * interval '5 minutes' >= %(start)s
      AND h.hour + g.i * interval '5 minutes' < %(end)s"""

# aligned intervals: each (point, interval) comes from exactly one hour, no DISTINCT needed
_PRESENT_INTERVALS = """SELECT h.point_id,
           (extract(epoch FROM h.hour - %(start)s) / %(interval_s)s)::int + g.k AS idx
    FROM readings_hourly h CROSS JOIN generate_series(0, {per_hour} - 1) AS g (k)
    WHERE h.point_id = ANY(%(points)s) AND h.hour >= %(first_hour)s AND h.hour < %(end)s
      AND (h.present >> (g.k * {spi})) & {mask} <> 0
      AND h.hour + g.k * %(interval_s)s * interval '1 second' >= %(start)s
      AND h.hour + g.k * %(interval_s)s * interval '1 second' < %(end)s"""


def presence_sql(slots_per_interval: int | None) -> str:
    """PRESENCE_SQL by whole intervals per hour, or slot by slot (None), as ``intervals_sql``."""
    if slots_per_interval is None:
        return PRESENCE_SQL.format(present=_PRESENT_SLOTS)
    spi = slots_per_interval
    return PRESENCE_SQL.format(
        present=_PRESENT_INTERVALS.format(spi=spi, mask=(1 << spi) - 1, per_hour=12 // spi)
    )


def aligned(start_offset_s: int, interval_s: int) -> int | None:
    """Slots per interval when hours start intervals (the period's start lies on an interval
    boundary of its UTC hour), else None."""
    return interval_s // 300 if start_offset_s % interval_s == 0 else None
