"""One text per export line, the same from the file and from the database: what rule 8
compares, a million times, without building a million typed tuples.

The text is PostgreSQL's output of a row (``row(…)::text``, ``record_out``) of the
line's canonical values, in ``COLUMNS`` order: ``export_lines.sql`` has the server write
it for each ledger entry, and ``line_text`` writes the same characters in Python for a
line of the file. The canonical values are spelled as a faithful export spells them, so
that a plain line of the file (no value ``record_out`` would quote) is its own text in
parentheses, and ``bot.export.scan`` need not rebuild it. Two lines have the same text
exactly when their typed values (``ExportLine``) are equal:

- text as text; none (an empty field) as nothing; a value that is empty or holds a
  quote, a backslash, a parenthesis, a comma or white space quoted as ``record_out``
  quotes it (``"…"``, quotes and backslashes doubled): the text is unambiguous;
- ``amount_minor`` the signed integer's digits; ``control_plane_component`` ``true`` /
  ``false``;
- ``period_start`` in UTC as ``2026-11-01T04:00:00Z`` (fractional seconds, when there are
  any, without trailing zeros);
- ``quantity`` with six decimals, as ``numeric(20, 6)`` prints (``3600.000000``), or all its
  decimals when it has more (never equal to a stored quantity): equal numbers, equal
  digits, however many zeros the file wrote.

Should the two sides ever spell an equal value differently, the line is first counted as
differing and then dropped when its break is put in words (``reconcile.details``
compares the typed lines): a false break never reaches a finding.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

# record_out quotes a value that is empty or holds one of these (isspace in C: \t\n\v\f\r and space)
_QUOTE = re.compile(r'[ \t\n\x0b\x0c\r"\\(),]')


def field(value: str | None) -> str:
    """One text value as ``record_out`` writes it."""
    if value is None:
        return ""
    if value and _QUOTE.search(value) is None:
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '""') + '"'


def time_field(t: datetime) -> str:
    """A ``period_start``: RFC 3339 in UTC, fractional seconds only when there are any."""
    u = t.astimezone(UTC)
    text = f"{u.year:04d}-{u.month:02d}-{u.day:02d}T{u.hour:02d}:{u.minute:02d}:{u.second:02d}"
    if u.microsecond:
        text += "." + f"{u.microsecond:06d}".rstrip("0")
    return text + "Z"


def decimal_field(d: Decimal) -> str:
    """A ``quantity``: six decimals, or all of them when there are more (no exponent)."""
    if d == 0:
        return "0.000000"
    whole, _, frac = format(d, "f").partition(".")
    frac = frac.rstrip("0")
    return f"{whole}.{frac.ljust(6, '0')}"


def bool_field(b: bool | None) -> str:
    return "" if b is None else ("true" if b else "false")


def line_text(line: Sequence[Any]) -> str:
    """The canonical text of one typed line (an ``ExportLine`` or a row of ``export_entries.sql``)."""
    (eid, month, org, project, kind, amount, currency, urid, source, aid, comp, cp, mode, scope, backend, rclass,
     start, qty, unit) = line
    return "(" + ",".join((
        field(eid), field(month), field(org), field(project), field(kind), str(amount), field(currency),
        field(urid), field(source), field(aid), field(comp), bool_field(cp), field(mode), field(scope),
        field(backend), field(rclass), "" if start is None else time_field(start),
        "" if qty is None else decimal_field(qty), field(unit),
    )) + ")"
