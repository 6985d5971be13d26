"""``meterit-central demo``: the whole system in one terminal (see ``run.py``)."""
