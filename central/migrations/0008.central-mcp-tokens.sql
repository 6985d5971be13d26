-- Per-operator tokens of the central MCP server. Like API keys, only a SHA-256 hash and a short
-- lookup prefix are stored; the token is shown once. A token acts as its user: the user's
-- tenant and role, and nothing once the user is deactivated or the token revoked.
-- depends: 0007.alerts-no-values

CREATE TABLE mcp_tokens (
    id            integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id       integer NOT NULL REFERENCES users (id),
    name          text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    prefix        text NOT NULL,
    token_hash    bytea NOT NULL UNIQUE,
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_used_at  timestamptz,
    revoked_at    timestamptz
);
CREATE INDEX mcp_tokens_user ON mcp_tokens (user_id);
