"""Rule 8 over a whole export, streamed: the file once, the ledger once, the breaks again.

Both sides are compared as canonical texts (``bot.export.canon``): each line of the file
and each ledger entry (``export_lines.sql``, written by the server) is its id and one
string, and each string is kept only as its hash. Memory is two 8-byte integers per line
in arrays (the hash of its ledger_entry_id, the hash of its text), never the lines or the
ledger entries themselves, nor a Python object per line:

1. ``Tally.add_texts`` for the file's lines, then ``Tally.freeze`` sorts them by id hash
   (the first line of an id is the one compared; an id on several lines is *repeated*);
2. ``Tally.add_entries`` for each batch of the org's entries posted in the export's
   months, as hashes too (and the ids, joined in one string a batch): the ledger is read
   while the file is (``bot.export.run``), so neither side waits for the other;
3. ``Tally.match`` looks each entry's id hash up among the lines' (a binary search over
   the sorted array): no line is a *missing* break, a line whose text hash differs is a
   *differs* break (their ids are kept, up to ``DETAIL_CAP``); lines no entry looked up
   name no such entry (*unknown*);
4. the stored side of the kept breaks is read typed (``export_entries_by_id``) and
   ``details`` reads the file again for the lines of those breaks only, comparing typed
   values: a line whose text differed but whose values are equal is no break.

Hashes are Python's (salted per process, so both sides must be hashed in one process,
as they are); two different ids or lines hash alike with odds of about 2**-64 a pair.
At most ``DETAIL_CAP`` breaks of each kind are kept in words; all are counted.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any, Literal

import numpy as np

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


class Tally:
    """Both sides of rule 8 as hashes (see the module's docstring for the steps)."""

    def __init__(self) -> None:
        self._ids: array[int] = array("q")  # the file's lines, in file order, until freeze()
        self._texts: array[int] = array("q")
        empty = np.empty(0, np.int64)
        self.ids, self.texts = empty, empty  # one per distinct id, sorted by id hash
        self.matched = np.empty(0, np.bool_)
        self.copies: dict[int, int] = {}  # repeated: id hash -> lines (the first DETAIL_CAP)
        self.unknown: set[int] = set()  # id hashes of unknown lines (the first DETAIL_CAP)
        self.differ_ids: dict[int, str] = {}  # differs: id hash -> id (the first DETAIL_CAP)
        self.missing_ids: list[str] = []  # the first DETAIL_CAP
        self.stored: dict[int, ExportLine] = {}  # the stored side of the kept breaks
        self.missing: list[ExportLine] = []
        self.counts: dict[BreakKind, int] = dict.fromkeys(("differs", "missing", "unknown", "repeated"), 0)
        self._db_ids: list[np.ndarray[Any, np.dtype[np.int64]]] = []  # the ledger's entries, a batch each
        self._db_texts: list[np.ndarray[Any, np.dtype[np.int64]]] = []
        self._db_eids: list[str] = []
        self.entries = 0

    def add_texts(self, texts: Iterable[tuple[str, str]]) -> None:
        """Each ``(ledger_entry_id, canonical text)`` of the file (the hot loop: two hashes, two appends)."""
        add_id, add_text = self._ids.append, self._texts.append
        for eid, text in texts:
            add_id(hash(eid))
            add_text(hash(text))

    def freeze(self) -> None:
        """After the file: its lines sorted by id hash, one per id (the first), repeats counted."""
        ids = np.frombuffer(self._ids, np.int64)
        order = np.argsort(ids, kind="stable")  # stable: the first line of an id comes first
        ids = ids[order]
        texts = np.frombuffer(self._texts, np.int64)[order]
        del order
        self._ids, self._texts = array("q"), array("q")
        first = np.ones(len(ids), np.bool_)
        first[1:] = ids[1:] != ids[:-1]
        starts = np.flatnonzero(first)
        lines = np.diff(np.append(starts, len(ids)))
        self.ids, self.texts = ids[starts], texts[starts]
        self.matched = np.zeros(len(self.ids), np.bool_)
        repeated = np.flatnonzero(lines > 1)
        self.counts["repeated"] = len(repeated)
        self.copies = {int(self.ids[i]): int(lines[i]) for i in repeated[:DETAIL_CAP]}

    def add_entries(self, rows: Sequence[Sequence[Any]]) -> None:
        """A batch of ``(ledger_entry_id, canonical text)`` of the stored entries, kept as
        their hashes (and the ids, joined, for the few breaks put in words) until ``match``:
        the ledger may be read before, while or after the file is."""
        n = len(rows)
        if n:
            self._db_ids.append(np.fromiter(map(hash, map(_first, rows)), np.int64, n))
            self._db_texts.append(np.fromiter(map(hash, map(_second, rows)), np.int64, n))
            self._db_eids.append("\x00".join(map(_first, rows)))  # PostgreSQL text holds no NUL
            self.entries += n

    def reset_entries(self) -> None:
        """Forget the entries read so far (a read of the wrong scope)."""
        self._db_ids, self._db_texts, self._db_eids, self.entries = [], [], [], 0

    def match(self) -> set[int]:
        """After both sides: each entry looked up among the lines' id hashes (a binary
        search over the sorted array); the counts; the id hashes whose lines to read again."""
        ids = np.concatenate(self._db_ids) if self._db_ids else np.empty(0, np.int64)
        texts = np.concatenate(self._db_texts) if self._db_texts else np.empty(0, np.int64)
        if len(self.ids):
            at = np.minimum(np.searchsorted(self.ids, ids), len(self.ids) - 1)
            found = self.ids[at] == ids
            self.matched[at[found]] = True
            wrong = np.flatnonzero(found & (self.texts[at] != texts))
        else:
            found, wrong = np.zeros(len(ids), np.bool_), np.empty(0, np.int64)
        missing = np.flatnonzero(~found)
        eid = self._eid_at()
        self.counts["missing"], self.counts["differs"] = len(missing), len(wrong)
        self.missing_ids = [eid(int(i)) for i in missing[:DETAIL_CAP]]
        self.differ_ids = {int(ids[i]): eid(int(i)) for i in wrong[:DETAIL_CAP]}
        unknown = np.flatnonzero(~self.matched)
        self.counts["unknown"] = len(unknown)
        self.unknown = {int(self.ids[i]) for i in unknown[:DETAIL_CAP]}
        return set(self.differ_ids) | self.unknown | set(self.copies)

    def _eid_at(self) -> Callable[[int], str]:
        """The ledger_entry_id of the i-th entry read (each batch's ids split once, when first asked)."""
        starts = np.cumsum([0] + [len(a) for a in self._db_ids])
        split: dict[int, list[str]] = {}

        def eid(i: int) -> str:
            c = int(np.searchsorted(starts, i, side="right")) - 1
            ids = split.get(c)
            if ids is None:
                ids = split[c] = self._db_eids[c].split("\x00")
            return ids[i - int(starts[c])]
        return eid

    @property
    def stored_ids(self) -> list[str]:
        """The entries whose stored lines the breaks' words need."""
        return [*self.differ_ids.values(), *self.missing_ids]

    def add_stored(self, rows: Iterable[Sequence[Any]]) -> None:
        """The typed stored lines of ``stored_ids``."""
        by_id = {row[0]: expected_line(row) for row in rows}
        self.stored = {k: by_id[eid] for k, eid in self.differ_ids.items() if eid in by_id}
        self.missing = [by_id[eid] for eid in self.missing_ids if eid in by_id]

    @property
    def broken(self) -> bool:
        return any(self.counts.values())


_first, _second = itemgetter(0), itemgetter(1)


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
        stored = tally.stored.get(key)
        if stored is not None:
            if stored == line:  # the texts differed, the values do not: no break
                tally.counts["differs"] -= 1
            else:
                out.append(Break("differs", line.ledger_entry_id, shown=line, stored=stored, line_no=no))
        elif key in tally.unknown:
            out.append(Break("unknown", line.ledger_entry_id, shown=line, line_no=no))
    return out
