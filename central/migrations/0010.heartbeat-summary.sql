-- What the site page shows of each heartbeat, kept as columns when it is stored, so the page
-- reads a few numbers per heartbeat instead of whole documents (which were up to 32 MiB before
-- the heartbeat was validated). Rows stored earlier keep NULLs (no backfill: a full rewrite of
-- 90 days of heartbeats is no migration to run at start-up); the page shows them as unknown.
-- depends: 0009.ui-sessions

ALTER TABLE heartbeats
    ADD COLUMN backlog bigint,
    ADD COLUMN oldest_unsynced_age_s double precision,
    ADD COLUMN dropped_readings bigint,
    ADD COLUMN meters integer,
    ADD COLUMN unreachable integer,
    ADD COLUMN version text;
