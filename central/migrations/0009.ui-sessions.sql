-- Operator UI sessions, server-side: the signed cookie names a session id whose SHA-256 is here.
-- Signing out deletes the row, so a cookie copied before that stops working; a password reset
-- or deactivation deletes all rows of the user.
-- depends: 0008.central-mcp-tokens

CREATE TABLE ui_sessions (
    id_hash     bytea PRIMARY KEY,
    user_id     integer NOT NULL REFERENCES users (id),
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL
);
CREATE INDEX ui_sessions_user ON ui_sessions (user_id);
