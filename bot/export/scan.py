"""The records of one part of an export, a physical line at a time: plain lines split on
commas, the rest read by ``csv`` exactly as RFC 4180 has them.

A line with no quote, backslash, parenthesis, white space or NUL, and no longer than
``csv``'s field limit, is a record whose fields are its comma-separated pieces: the same
fields ``csv.reader`` returns for it, without its per-character state machine. Any other
line starts a record that ``csv.reader`` reads (a quoted field may go on for several
lines). Either way the record is checked by the ``LineParser``; a plain record whose
every checked value was seen valid before (the month, the org, the amount, the
time, …) is checked by looking those values up, and its canonical text
(``bot.export.canon``) is written straight from its fields. The result is the same as
``LineParser.parse`` then ``line_text``, which is what every other record goes through.

Line numbers are the file's physical lines, the header being line 1; a record's number
is that of its last line, as ``csv.reader.line_num`` counts.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from itertools import chain
from typing import Any

from bot.export.canon import bool_field, decimal_field, line_text, time_field
from bot.export.parse import MAX_ID_CHARS, ExportInvalid, LineParser

_CACHE_CAP = 100_000


class PartScan:
    """The records of one part, after its header, from ``lines`` (an iterator of physical
    lines with their line ends, such as a text file opened with ``newline=""``)."""

    def __init__(self, lines: Iterator[str], parser: LineParser, line_no: int) -> None:
        self.lines = lines
        self.parser = parser
        self.line_no = line_no  # the last physical line read
        self.count = 0  # records read
        self.limit = csv.field_size_limit()
        # raw value -> its canonical field text, for values seen valid
        self.amounts: dict[str, str] = {}
        self.bools: dict[str, str] = {"": "", "true": "true", "false": "false"}
        self.times: dict[str, str] = {"": ""}
        self.quantities: dict[str, str] = {"": ""}

    @classmethod
    def start(cls, lines: Iterator[str], parser: LineParser) -> PartScan:
        """Read the header (line 1, by csv: it may be quoted) and return the scan of the rest."""
        reader = csv.reader(lines, strict=True)
        parser.header(next(reader, None))
        return cls(lines, parser, reader.line_num)

    def texts(self) -> Iterator[tuple[str, str]]:
        """``(ledger_entry_id, canonical text)`` of every record, each checked."""
        p = self.parser
        width, months, projects, kinds, currencies = p.width, p.months, p.projects, p.kinds, p.currencies
        ie, im, io, ip, ik, ia, ic, ib, it, iq = (p.index[i] for i in (0, 1, 2, 3, 4, 5, 6, 11, 16, 17))
        # a plain line in COLUMNS order whose values are spelled canonically is its own text
        as_is = p.index == tuple(range(len(p.index))) and width == len(p.index)
        amounts, bools, times, quantities = self.amounts, self.bools, self.times, self.quantities
        limit = self.limit
        for line in self.lines:
            self.line_no += 1
            body = line.rstrip("\r\n")
            if not body:
                continue  # a blank line
            if not ('"' in body or " " in body or "(" in body or ")" in body or "\\" in body or "\t" in body
                    or "\x00" in body or "\x0b" in body or "\x0c" in body or len(body) > limit):
                rec = body.split(",")
                if len(rec) == width:
                    eid, amount, cp, start, qty = rec[ie], rec[ia], rec[ib], rec[it], rec[iq]
                    a, c, s, q = amounts.get(amount), bools.get(cp), times.get(start), quantities.get(qty)
                    if (a is not None and c is not None and s is not None and q is not None
                            and 0 < len(eid) <= MAX_ID_CHARS and rec[io] == p.org_id and rec[im] in months
                            and rec[ip] in projects and rec[ik] in kinds and rec[ic] in currencies):
                        self.count += 1
                        if as_is and a == amount and c == cp and s == start and q == qty:
                            yield eid, f"({body})"
                        else:
                            yield eid, self._text(rec, a, c, s, q)
                        continue
            else:
                got = self._csv_record(line)
                if got is None:
                    continue
                rec = got
            typed = self._checked(rec)
            yield typed[0], line_text(typed)

    def _text(self, rec: list[str], amount: str, cp: str, start: str, qty: str) -> str:
        """The text of a plain record whose columns come in another order, or some of
        whose values are spelled otherwise than canonically (``TRUE``, ``3600``, …)."""
        values = list(self.parser.pick(rec))
        values[5], values[11], values[16], values[17] = amount, cp, start, qty
        return "(" + ",".join(values) + ")"

    def records(self, only: set[int] | None = None) -> Iterator[tuple[int, tuple[Any, ...]]]:
        """``(line number, typed line)`` of every record, or (``only``) of those whose
        ``hash(ledger_entry_id)`` is in it: the others are skipped, not checked again."""
        key_at = self.parser.index[0]
        for line in self.lines:
            self.line_no += 1
            body = line.rstrip("\r\n")
            if not body:
                continue
            rec: list[str] | None = None  # split only when the line is wanted
            if '"' in body or "\x00" in body or len(body) > self.limit:
                rec = self._csv_record(line)
                if rec is None:
                    continue
                eid = rec[key_at] if len(rec) > key_at else ""
            else:
                parts = body.split(",", key_at + 1)
                eid = parts[key_at] if len(parts) > key_at else ""
            if only is not None and hash(eid) not in only:
                self.count += 1
                continue
            yield self.line_no, self._checked(rec if rec is not None else body.split(","))

    def _csv_record(self, line: str) -> list[str] | None:
        """The record starting at ``line`` as csv reads it (more lines when a quoted field
        goes on); None for a blank line."""
        first = self.line_no
        reader = csv.reader(chain((line,), self.lines), strict=True)
        try:
            rec = next(reader)
        except csv.Error as e:
            raise ExportInvalid(f"not CSV as RFC 4180 has it ({e})", first) from None
        self.line_no += reader.line_num - 1
        return rec or None

    def _checked(self, rec: list[str]) -> tuple[Any, ...]:
        """The typed line of a record that did not pass the fast checks (or is read typed),
        and its values remembered as valid for the fast checks of the lines after it."""
        typed = self.parser.parse(rec, self.line_no)
        self.count += 1
        _, _, _, _, _, amount, _, _, _, _, _, cp, *_, start, qty, _ = self.parser.pick(rec)
        if len(self.amounts) < _CACHE_CAP:
            self.amounts[amount] = str(typed[5])
        self.bools[cp] = bool_field(typed[11])
        if start and len(self.times) < _CACHE_CAP:
            self.times[start] = time_field(typed[16])
        if qty and len(self.quantities) < _CACHE_CAP:
            self.quantities[qty] = decimal_field(typed[17])
        return typed
