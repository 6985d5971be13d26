"""Alerting: rules (``rules``), what is wrong right now (``conditions``), the alert state
machine (``engine``), muting (``silences``, ``maintenance``), e-mail notifications
(``notify``, ``messages``) and the queries the faces show (``views``).

The worker evaluates everything every 30 s under one advisory lock (``evaluate.run``)."""
