"""The appliance's sync with central: store-and-forward upload, meter config, heartbeat.

Every piece keeps its state in the edge database, so a job killed halfway or a flushed Redis
is re-derived from the database on the next run.
"""
