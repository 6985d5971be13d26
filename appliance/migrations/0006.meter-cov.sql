-- Change-of-value subscriptions, opted into per meter ("cov": true in its definition): its
-- points are subscribed to and polled only when notifications stop.
-- depends: 0005.web-sessions

ALTER TABLE meters ADD COLUMN cov boolean NOT NULL DEFAULT false;
