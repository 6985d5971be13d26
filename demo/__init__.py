"""``make demo``: the whole system — central, one appliance, simulated meters — in one terminal.

A tool of the repository, not of either side: it runs from a checkout (``python -m demo``),
imports ``appliance``, ``central`` and ``web`` alike, and is not part of any package.
"""
