-- depends: 0002.upload-leases
DROP TABLE web_sessions;
