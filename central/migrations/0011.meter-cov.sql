-- Change-of-value subscriptions, opted into per meter ("cov": true); carried to the site's
-- appliances in /sync/config.
-- depends: 0010.heartbeat-summary

ALTER TABLE meters ADD COLUMN cov boolean NOT NULL DEFAULT false;
