"""Rows of ``COPY (…) TO STDOUT`` in PostgreSQL's text format, and the month ranges a
streamed export read asks for.

The text format (PostgreSQL's COPY documentation, "Text Format"): one line per row,
columns separated by a tab, ``\\N`` for null, and a backslash before a backslash, a tab,
a newline and the other control characters it escapes (``\\b \\f \\n \\r \\t \\v``). A
value holding none of them is its own bytes, so a row with no backslash is one split.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

_ESCAPED = re.compile(r"\\(.)")
_ESCAPES = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\"}


def _unescape(value: str) -> str | None:
    if value == "\\N":
        return None
    return _ESCAPED.sub(lambda m: _ESCAPES.get(m.group(1), m.group(1)), value)


class CopyRows:
    """Feeds ``sink`` the rows (lists of column values) of each chunk COPY sends."""

    def __init__(self, sink: Callable[[Sequence[Sequence[Any]]], None]) -> None:
        self.sink = sink
        self.rest = b""
        self.rows = 0

    async def feed(self, data: bytes) -> None:
        if self.rest:
            data = self.rest + data
        cut = data.rfind(b"\n") + 1
        self.rest = data[cut:]
        if not cut:
            return
        lines = data[:cut].decode("utf-8").split("\n")
        lines.pop()  # after the last newline
        rows = [[_unescape(v) for v in line.split("\t")] if "\\" in line else line.split("\t") for line in lines]
        self.rows += len(rows)
        self.sink(rows)

    def close(self) -> None:
        if self.rest:
            raise ValueError(f"COPY ended inside a row ({len(self.rest)} bytes after the last newline)")


def month_runs(months: Sequence[str]) -> list[tuple[datetime, datetime]]:
    """``[first instant, end)`` of each run of consecutive months (``YYYY-MM``, sorted)."""
    runs: list[tuple[datetime, datetime]] = []
    for m in months:
        lo = datetime.strptime(m, "%Y-%m").replace(tzinfo=UTC)
        hi = (lo + timedelta(days=32)).replace(day=1)
        if runs and runs[-1][1] == lo:
            runs[-1] = (runs[-1][0], hi)
        else:
            runs.append((lo, hi))
    return runs
