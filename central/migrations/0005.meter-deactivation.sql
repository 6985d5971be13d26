-- When a meter or data point was deactivated: ingest keeps what was collected before that
-- moment (an appliance may upload it days later) and refuses what is stamped after it.
-- A trigger sets it, so every path that flips `active` (API, UI, CLI, SQL) records the moment.
-- depends: 0004.central-alerts

ALTER TABLE meters ADD COLUMN deactivated_at timestamptz;
ALTER TABLE meter_points ADD COLUMN deactivated_at timestamptz;

UPDATE meters SET deactivated_at = updated_at WHERE NOT active;
UPDATE meter_points p SET deactivated_at = m.updated_at FROM meters m
    WHERE m.id = p.meter_id AND NOT p.active;

CREATE FUNCTION stamp_deactivation() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.active THEN
        NEW.deactivated_at := NULL;
    ELSIF OLD.active THEN
        NEW.deactivated_at := now();
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER meters_stamp_deactivation BEFORE UPDATE OF active ON meters
    FOR EACH ROW EXECUTE FUNCTION stamp_deactivation();
CREATE TRIGGER meter_points_stamp_deactivation BEFORE UPDATE OF active ON meter_points
    FOR EACH ROW EXECUTE FUNCTION stamp_deactivation();
