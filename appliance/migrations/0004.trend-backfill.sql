-- Trend-log backfill: readings read back from a meter's trend log after a gap are ordinary
-- readings, marked; and each gap still to fill is a row, deleted in the transaction that writes
-- its readings, so a crash in between leaves it to be filled at the next start.
-- depends: 0003.meter-quirks

ALTER TABLE readings ADD COLUMN backfilled boolean NOT NULL DEFAULT false;

CREATE TABLE backfill_gaps (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    meter_id    integer NOT NULL REFERENCES meters (id) ON DELETE CASCADE,
    since       timestamptz NOT NULL,   -- the last reading before the gap (exclusive)
    until       timestamptz NOT NULL,   -- the first reading after it (exclusive)
    created_at  timestamptz NOT NULL DEFAULT now(),
    CHECK (since < until)
);
CREATE INDEX backfill_gaps_meter ON backfill_gaps (meter_id);
