"""E-mail from central: the outbox (``outbox.enqueue`` — what alerts and reports call), the SMTP
transport (``smtp``), and the worker's drain job (``drain``) with retries and the hourly cap."""
