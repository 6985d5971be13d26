"""The appliance's sync with central: store-and-forward upload, meter config, heartbeat.

Every piece keeps its state in the edge database, so a job killed halfway or a flushed Redis
is re-derived from the database on the next run.

Who commits: a function that is given a connection never commits it, except a unit of work
named ``commit_*`` (``ledger.commit_claim``, ``connectivity.commit_offline``,
``retention.commit_budget`` …), which commits what it did before it returns. A function that
opens its own connection (it takes the settings) owns it and commits as it needs.
"""
