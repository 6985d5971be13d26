-- The e-mail outbox: whatever central e-mails (alerts, reports) is written here first, in the
-- caller's transaction, and sent by the worker's drain job, so a message is never lost to an
-- SMTP outage or a restart, and every failure stays visible with its reason.
-- depends: 0002.central-sync

-- What is said, once, however many recipients it goes to (a report's PDF is stored once).
CREATE TABLE mail_messages (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id   integer REFERENCES tenants (id),     -- NULL: not any one tenant's mail
    created_at  timestamptz NOT NULL DEFAULT now(),
    subject     text NOT NULL,
    text_body   text NOT NULL,
    html_body   text,
    capped      boolean NOT NULL DEFAULT true        -- counts against the per-recipient hourly cap
);
CREATE INDEX mail_messages_tenant ON mail_messages (tenant_id, created_at);

CREATE TABLE mail_attachments (
    message_id  bigint NOT NULL REFERENCES mail_messages (id) ON DELETE CASCADE,
    position    smallint NOT NULL,
    filename    text NOT NULL,
    mime        text NOT NULL,
    content     bytea NOT NULL,
    PRIMARY KEY (message_id, position)
);

-- One delivery per (message, recipient): the unit that is sent, retried, capped and shown.
-- queued -> sent | failed (refused for good; an operator may queue it again) | digested
-- (rolled into the digest delivery digest_id because the recipient's hourly cap was reached).
CREATE TABLE mail_outbox (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    message_id       bigint NOT NULL REFERENCES mail_messages (id) ON DELETE CASCADE,
    recipient        text NOT NULL,
    status           text NOT NULL DEFAULT 'queued'
                     CHECK (status IN ('queued', 'sent', 'failed', 'digested')),
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    last_error       text,
    sent_at          timestamptz,
    digest_id        bigint REFERENCES mail_outbox (id) ON DELETE SET NULL
);
CREATE INDEX mail_outbox_due ON mail_outbox (next_attempt_at) WHERE status = 'queued';
CREATE INDEX mail_outbox_recipient_sent ON mail_outbox (recipient, sent_at) WHERE status = 'sent';
CREATE INDEX mail_outbox_message ON mail_outbox (message_id);
