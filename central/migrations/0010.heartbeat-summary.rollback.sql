-- depends: 0009.ui-sessions
ALTER TABLE heartbeats
    DROP COLUMN backlog,
    DROP COLUMN oldest_unsynced_age_s,
    DROP COLUMN dropped_readings,
    DROP COLUMN meters,
    DROP COLUMN unreachable,
    DROP COLUMN version;
