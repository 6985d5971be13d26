-- Local UI sessions, server-side: the signed cookie names a session id whose SHA-256 is here.
-- Logging out deletes the row, so a cookie copied before that stops working; changing the
-- password deletes every other row.
-- depends: 0004.trend-backfill

CREATE TABLE web_sessions (
    id_hash     bytea PRIMARY KEY,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL
);
