"""The admin subcommands of ``meterit-central``, one module each (registered in ``central.cli``)."""
