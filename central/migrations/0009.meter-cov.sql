-- Change-of-value subscriptions, opted into per meter ("cov": true); carried to the site's
-- appliances in /sync/config.
-- depends: 0008.central-mcp-tokens

ALTER TABLE meters ADD COLUMN cov boolean NOT NULL DEFAULT false;
