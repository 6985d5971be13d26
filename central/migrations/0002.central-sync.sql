-- Sync support: a per-site config version (ETag of /sync/config and the ingest cache's
-- invalidation signal), operator bearer tokens, and the hourly rollup's to-do list.
-- depends: 0001.central-schema

-- Bumped by triggers whenever a meter or data point of the site changes, so appliances get a
-- cheap 304 and every gunicorn worker knows when its cached (meter, point) -> point_id map is stale.
ALTER TABLE sites ADD COLUMN config_version bigint NOT NULL DEFAULT 1;

CREATE FUNCTION bump_site_config_version() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    target integer;
BEGIN
    IF TG_TABLE_NAME = 'meters' THEN
        target := CASE WHEN TG_OP = 'DELETE' THEN OLD.site_id ELSE NEW.site_id END;
        IF TG_OP = 'UPDATE' AND OLD.site_id <> NEW.site_id THEN
            UPDATE sites SET config_version = config_version + 1 WHERE id = OLD.site_id;
        END IF;
    ELSE
        SELECT m.site_id INTO target FROM meters m
        WHERE m.id = CASE WHEN TG_OP = 'DELETE' THEN OLD.meter_id ELSE NEW.meter_id END;
    END IF;
    UPDATE sites SET config_version = config_version + 1 WHERE id = target;
    RETURN NULL;
END $$;

CREATE TRIGGER meters_bump_config AFTER INSERT OR UPDATE OR DELETE ON meters
    FOR EACH ROW EXECUTE FUNCTION bump_site_config_version();
CREATE TRIGGER meter_points_bump_config AFTER INSERT OR UPDATE OR DELETE ON meter_points
    FOR EACH ROW EXECUTE FUNCTION bump_site_config_version();

-- Bearer tokens for the operator JSON API; like API keys, only a SHA-256 hash is stored.
CREATE TABLE operator_tokens (
    id          integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id     integer NOT NULL REFERENCES users (id),
    token_hash  bytea NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL
);
CREATE INDEX api_keys_site ON api_keys (site_id);

-- Hours whose readings changed since readings_hourly was last computed for them, per site.
-- Ingest marks them (a handful of rows per batch); the rollup job recomputes and clears them.
-- Maintaining readings_hourly inside ingest measured at less than half the ingest rate (one
-- rollup upsert per reading or so, since a batch holds few readings per point and hour).
CREATE TABLE readings_hourly_dirty (
    site_id    integer NOT NULL REFERENCES sites (id),
    hour       timestamptz NOT NULL,
    marked_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (site_id, hour)
);
