-- Edge schema: what the collector writes and the sync worker drains.
-- depends:

-- Meters to poll. Filled by the meter-config sync (source 'central') or a local meters file
-- (source 'file'); never deleted, only deactivated, so readings keep their meter.
CREATE TABLE meters (
    id              integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    external_id     text NOT NULL UNIQUE,
    name            text NOT NULL DEFAULT '',
    address         text,                 -- 'ip[:port]' or 'network:mac'; NULL = resolve by instance
    device_instance integer CHECK (device_instance BETWEEN 0 AND 4194303),
    active          boolean NOT NULL DEFAULT true,
    source          text NOT NULL DEFAULT 'file' CHECK (source IN ('file', 'central')),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CHECK (address IS NOT NULL OR device_instance IS NOT NULL)
);

CREATE TABLE meter_points (
    id              integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    meter_id        integer NOT NULL REFERENCES meters (id),
    name            text NOT NULL,        -- the data point, e.g. 'energy_kwh'
    object_type     text NOT NULL,        -- BACnet object type, e.g. 'analog-input'
    object_instance integer NOT NULL CHECK (object_instance BETWEEN 0 AND 4194303),
    property        text NOT NULL DEFAULT 'present-value',
    unit            text NOT NULL DEFAULT '',
    active          boolean NOT NULL DEFAULT true,
    UNIQUE (meter_id, name)
);

-- One row per value read. Narrow fixed-width columns keep inserts and the drain cheap;
-- unsynced rows are found through a partial index that shrinks as the backlog drains.
CREATE TABLE readings (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    meter_id    integer NOT NULL,
    point_id    integer NOT NULL,
    ts          timestamptz NOT NULL,
    value       double precision NOT NULL,
    synced_at   timestamptz,
    batch_id    uuid                   -- upload batch currently holding the row (the lease)
);
CREATE INDEX readings_unsynced ON readings (id) WHERE synced_at IS NULL;
CREATE INDEX readings_point_ts ON readings (point_id, ts);
CREATE INDEX readings_synced_at ON readings (synced_at) WHERE synced_at IS NOT NULL;

-- Upload batches in flight: the lease that keeps the same rows from being sent twice at once.
CREATE TABLE upload_batches (
    id            uuid PRIMARY KEY,
    first_id      bigint NOT NULL,
    last_id       bigint NOT NULL,
    row_count     integer NOT NULL,
    leased_until  timestamptz NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);

-- Readings central refused as invalid: kept with the reason, never retried.
CREATE TABLE quarantine (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    reading_id      bigint NOT NULL,
    meter_id        integer NOT NULL,
    point_id        integer NOT NULL,
    ts              timestamptz NOT NULL,
    value           double precision NOT NULL,
    reason          text NOT NULL,
    batch_id        uuid,
    quarantined_at  timestamptz NOT NULL DEFAULT now()
);

-- The current health of each meter, kept by the collector.
CREATE TABLE meter_status (
    meter_id              integer PRIMARY KEY REFERENCES meters (id),
    state                 text NOT NULL DEFAULT 'unknown'
                          CHECK (state IN ('unknown', 'reachable', 'unreachable', 'stale')),
    state_since           timestamptz NOT NULL DEFAULT now(),
    last_reading_at       timestamptz,
    last_error            text,
    last_error_at         timestamptz,
    consecutive_failures  integer NOT NULL DEFAULT 0,
    point_errors          jsonb NOT NULL DEFAULT '{}'::jsonb,   -- point name -> error text
    updated_at            timestamptz NOT NULL DEFAULT now()
);

-- One row per upload attempt, for the local UI and troubleshooting.
CREATE TABLE sync_log (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    batch_id     uuid,
    started_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz,
    row_count    integer NOT NULL DEFAULT 0,
    accepted     integer NOT NULL DEFAULT 0,
    duplicates   integer NOT NULL DEFAULT 0,
    rejected     integer NOT NULL DEFAULT 0,
    error        text
);
CREATE INDEX sync_log_started ON sync_log (started_at);

-- One row per meter-config pull from central.
CREATE TABLE meter_sync_log (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    started_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz,
    result       text NOT NULL CHECK (result IN ('running', 'ok', 'unchanged', 'error', 'refused')),
    inserted     integer NOT NULL DEFAULT 0,
    updated      integer NOT NULL DEFAULT 0,
    deactivated  integer NOT NULL DEFAULT 0,
    error        text
);

-- Readings dropped by the buffer budget: counted per meter and time range, never silently.
CREATE TABLE dropped_readings (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    meter_id    integer NOT NULL,
    from_ts     timestamptz NOT NULL,
    to_ts       timestamptz NOT NULL,
    row_count   bigint NOT NULL,
    dropped_at  timestamptz NOT NULL DEFAULT now()
);

-- Singleton row of appliance-wide state shared by the units.
CREATE TABLE appliance_state (
    id                     boolean PRIMARY KEY DEFAULT true CHECK (id),
    collection_paused      boolean NOT NULL DEFAULT false,
    upload_paused          boolean NOT NULL DEFAULT false,
    connectivity           text NOT NULL DEFAULT 'unknown'
                           CHECK (connectivity IN ('unknown', 'online', 'offline')),
    connectivity_since     timestamptz NOT NULL DEFAULT now(),
    consecutive_failures   integer NOT NULL DEFAULT 0,
    last_success_at        timestamptz,
    last_error             text,
    last_error_at          timestamptz,
    dropped_total          bigint NOT NULL DEFAULT 0,
    config_etag            text,
    site_id                integer,
    site_name              text,
    updated_at             timestamptz NOT NULL DEFAULT now()
);
INSERT INTO appliance_state DEFAULT VALUES;

-- Tell the collector to reload its meters without a restart.
CREATE FUNCTION notify_meters_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('meters_changed', '');
    RETURN NULL;
END $$;
CREATE TRIGGER meters_changed AFTER INSERT OR UPDATE OR DELETE ON meters
    FOR EACH STATEMENT EXECUTE FUNCTION notify_meters_changed();
CREATE TRIGGER meter_points_changed AFTER INSERT OR UPDATE OR DELETE ON meter_points
    FOR EACH STATEMENT EXECUTE FUNCTION notify_meters_changed();
-- And the collector to re-read the pause flag at once.
CREATE FUNCTION notify_state_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.collection_paused IS DISTINCT FROM OLD.collection_paused THEN
        PERFORM pg_notify('collection_paused', NEW.collection_paused::text);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER appliance_state_changed AFTER UPDATE ON appliance_state
    FOR EACH ROW EXECUTE FUNCTION notify_state_changed();
