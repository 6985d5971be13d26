-- depends: 0002.central-sync
DROP TABLE mail_outbox;
DROP TABLE mail_attachments;
DROP TABLE mail_messages;
