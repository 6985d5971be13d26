-- depends: 0007.dead-columns
-- What /metrics on the local UI reports and no other table keeps, written by the units that
-- know it: the collector adds each meter's points read and failed to the status row it already
-- upserts every cycle (no extra statement per meter), and one row per counter in edge_counters
-- (the collector's cycles, the upload's batches and readings by outcome). Totals only grow;
-- a counter has its own row so the collector and the upload never wait on each other.
ALTER TABLE meter_status
    ADD COLUMN points_read_total bigint NOT NULL DEFAULT 0,
    ADD COLUMN points_failed_total bigint NOT NULL DEFAULT 0;

CREATE TABLE edge_counters (
    name        text PRIMARY KEY,
    value       double precision NOT NULL DEFAULT 0,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
