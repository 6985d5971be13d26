"""Text put into a CSV file that people open in a spreadsheet.

Spreadsheets run a cell that starts with ``=``, ``+``, ``-`` or ``@`` as a formula (and a
leading tab or carriage return is stripped before that check by some of them), so a site,
meter, point or unit named ``=HYPERLINK(…)`` would run when an operator opens an export.
Such text gets a leading apostrophe, which spreadsheets show as text (OWASP's advice).
Numbers are written as numbers: a negative value must stay a number, so only text is escaped.
"""

from __future__ import annotations

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def text_cell(value: str | None) -> str:
    if value is None:
        return ""
    return "'" + value if value.startswith(FORMULA_STARTS) else value
