"""Rule 8 over a whole export, streamed: the file once, the ledger once, the breaks again.

Memory is two small integers per line (the hash of its ledger_entry_id, the hash of the
whole canonical line), never the lines or the ledger entries themselves:

1. ``Tally.add_line`` for each line of the file;
2. ``Tally.add_entries`` for each batch of the org's entries posted in the export's
   months (``export_entries.sql``), each turned into the line a faithful export shows
   (``expected_line``): the entry's hash pops its line; no line is a *missing* break, a
   line whose hash differs is a *differs* break (the stored side is kept for the words);
3. what is left in the tally are lines naming no such entry (*unknown*), and ids seen on
   more than one line are *repeated*;
4. ``details`` reads the file again for the lines of those breaks only.

Hashes are Python's (salted per process, so both sides must be hashed in one process,
as they are); two different ids or lines hash alike with odds of about 2**-64 a pair.
At most ``DETAIL_CAP`` breaks of each kind are kept in words; all are counted.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from bot.export.lines import ExportLine, expected_line

DETAIL_CAP = 2000
BreakKind = Literal["differs", "missing", "unknown", "repeated"]


@dataclass(frozen=True, slots=True)
class Break:
    """One break of rule 8: a line shown otherwise than stored, an entry on no line, a
    line naming no entry of the export's scope, or an entry on several lines."""

    kind: BreakKind
    ledger_entry_id: str
    shown: ExportLine | None = None  # the line in the file (none for a missing entry)
    stored: ExportLine | None = None  # the line a faithful export shows (none when unknown)
    line_no: int | None = None
    copies: int = 1  # repeated: on how many lines

    @property
    def app_instance_id(self) -> str | None:
        for side in (self.stored, self.shown):
            if side is not None and side.app_instance_id:
                return side.app_instance_id
        return None


@dataclass(slots=True)
class Tally:
    lines: dict[int, int] = field(default_factory=dict)
    copies: dict[int, int] = field(default_factory=dict)
    stored: dict[int, ExportLine] = field(default_factory=dict)  # differs, by id hash
    missing: list[ExportLine] = field(default_factory=list)
    counts: dict[BreakKind, int] = field(default_factory=lambda: dict.fromkeys(
        ("differs", "missing", "unknown", "repeated"), 0))
    entries: int = 0

    def add_lines(self, numbered: Iterable[tuple[int, tuple[Any, ...]]]) -> None:
        """Each ``(line number, line)`` of the file (the hot loop: two hashes and a dict)."""
        lines, copies = self.lines, self.copies
        for _, line in numbered:
            key = hash(line[0])
            if key in lines:
                copies[key] = copies.get(key, 1) + 1
            else:
                lines[key] = hash(line)

    def add_entries(self, rows: Sequence[Sequence[Any]]) -> None:
        pop, counts = self.lines.pop, self.counts
        for row in rows:
            line = tuple(row)  # equal to (and hashing as) its expected_line(row)
            key = hash(line[0])
            fp = pop(key, None)
            if fp is None:
                counts["missing"] += 1
                if len(self.missing) < DETAIL_CAP:
                    self.missing.append(expected_line(line))
            elif fp != hash(line):
                counts["differs"] += 1
                if len(self.stored) < DETAIL_CAP:
                    self.stored[key] = expected_line(line)
        self.entries += len(rows)

    def finish(self) -> set[int]:
        """After the last entry: count what is left; the id hashes whose lines to read again."""
        self.counts["unknown"] = len(self.lines)
        self.counts["repeated"] = len(self.copies)
        wanted = set(self.stored)
        wanted.update(list(self.lines)[:DETAIL_CAP])
        wanted.update(list(self.copies)[:DETAIL_CAP])
        return wanted

    @property
    def broken(self) -> bool:
        return any(self.counts.values())


def details(tally: Tally, wanted: set[int], lines: Iterable[tuple[int, ExportLine]]) -> list[Break]:
    """The breaks in words, from a second pass over the file's ``(line number, line)`` (only
    the wanted lines need be given)."""
    out: list[Break] = [Break("missing", e.ledger_entry_id, stored=e) for e in tally.missing]
    seen: set[int] = set()
    for no, line in lines:
        key = hash(line.ledger_entry_id)
        if key not in wanted or key in seen:
            continue
        seen.add(key)
        if key in tally.copies:
            out.append(Break("repeated", line.ledger_entry_id, shown=line, line_no=no, copies=tally.copies[key]))
        if key in tally.stored:
            out.append(Break("differs", line.ledger_entry_id, shown=line, stored=tally.stored[key], line_no=no))
        elif key in tally.lines:
            out.append(Break("unknown", line.ledger_entry_id, shown=line, line_no=no))
    return out
