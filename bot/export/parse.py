"""Checking one record of a usage export against its header: every value, the line and
column named when one is wrong (``ExportInvalid``), the typed line when all are right.

``LineParser`` also keeps what the lines so far have shown (the org, the months, the
projects) and the values it has seen valid, which the fast scan (``bot.export.scan``)
looks up instead of checking the same month or currency a million times.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

from bot.errors import BadInput
from bot.export.lines import COLUMNS

MAX_ID_CHARS = 128

_MONTH = re.compile(r"\d{4}-(0[1-9]|1[0-2])")
_DECIMAL = re.compile(r"-?\d{1,20}(\.\d{1,12})?")
_CURRENCY = re.compile(r"[A-Z]{3}")
_KIND = re.compile(r"[a-z][a-z_]{0,39}")
_BOOLS = {"true": True, "false": False, "": None}



class ExportInvalid(BadInput):
    """The export cannot be read: says which line and column, and why."""

    def __init__(self, reason: str, line: int | None = None, column: str | None = None, *,
                 label: str = "") -> None:
        where = label
        if line is not None:
            where += f"line {line}" + (f", column {column}" if column else "") + ": "
        super().__init__(f"usage export {where}{reason}")
        self.label = label
        self.line = line
        self.column = column
        self.reason = reason


class LineParser:
    """Checks one record at a time against the header; caches repeated values."""

    def start(self, label: str) -> None:
        """A new part: its own header follows."""
        self.label = label
        self.last_line = 1

    def __init__(self, expected_org: str | None) -> None:
        self.label = ""
        self.org_id = expected_org
        self.months: set[str] = set()
        self.projects: set[str] = set()
        self.last_line = 1
        self.index: tuple[int, ...] = ()
        self.width = 0
        self.pick: Callable[[list[str]], Any] = operator.itemgetter(0)
        self.kinds: set[str] = set()
        self.currencies: set[str] = set()
        self._times: dict[str, datetime] = {}
        self._decimals: dict[str, Decimal] = {}

    def header(self, rec: list[str] | None) -> None:
        if not rec:
            raise ExportInvalid("the file is empty: a usage export starts with a header row", 1)
        names = [h.strip().lower() for h in rec]
        missing = [c for c in COLUMNS if c not in names]
        if len(missing) == len(COLUMNS):
            raise ExportInvalid("not a usage export: the header names none of its columns "
                                f"({', '.join(COLUMNS[:4])}, …)", 1)
        if missing:
            raise ExportInvalid(f"missing required column{'s' if len(missing) > 1 else ''} "
                                f"{', '.join(missing)}", 1)
        self.index = tuple(names.index(c) for c in COLUMNS)
        self.width = len(names)
        self.pick = operator.itemgetter(*self.index)

    def parse(self, rec: list[str], line: int) -> tuple[Any, ...]:
        self.last_line = line
        if len(rec) != self.width:
            raise ExportInvalid(f"{len(rec)} fields where the header has {self.width}", line)
        (eid, month, org, project, kind, amount, currency, urid, source, aid, comp, cp, mode, scope, backend, rclass,
         start, qty, unit) = self.pick(rec)
        if not eid or len(eid) > MAX_ID_CHARS:
            raise ExportInvalid(f"a ledger_entry_id of {len(eid)} characters (1 to {MAX_ID_CHARS})", line,
                                "ledger_entry_id")
        if month not in self.months:
            self._month(month, line)
        if org != self.org_id:
            self._org(org, line)
        if project not in self.projects:
            if not project:
                raise ExportInvalid("no project_id", line, "project_id")
            self.projects.add(project)
        if kind not in self.kinds:
            if not _KIND.fullmatch(kind):
                raise ExportInvalid(f"{_short(kind)} is not a ledger entry kind", line, "line_kind")
            self.kinds.add(kind)
        digits = amount[1:] if amount[:1] == "-" else amount
        if not (digits.isascii() and digits.isdigit() and len(digits) <= 18):
            raise ExportInvalid(f"{_short(amount)} is not a whole number of minor units", line, "amount_minor")
        if currency not in self.currencies:
            if not _CURRENCY.fullmatch(currency):
                raise ExportInvalid(f"{_short(currency)} is not an ISO 4217 currency code", line, "currency")
            self.currencies.add(currency)
        return (
            eid, month, org, project, kind, int(amount), currency, urid or None, source or None, aid or None,
            comp or None, self._bool(cp, line) if cp else None, mode or None, scope or None, backend or None,
            rclass or None, self._time(start, line) if start else None, self._decimal(qty, line) if qty else None,
            unit or None,
        )

    def _month(self, month: str, line: int) -> None:
        if not _MONTH.fullmatch(month):
            raise ExportInvalid(f"{_short(month)} is not a month (YYYY-MM)", line, "billing_month")
        self.months.add(month)

    def _org(self, org: str, line: int) -> None:
        if not org:
            raise ExportInvalid("no org_id", line, "org_id")
        if self.org_id is not None:
            raise ExportInvalid(f"a line of org {_short(org)} in an export of {self.org_id}", line, "org_id")
        self.org_id = org

    def _bool(self, s: str, line: int) -> bool | None:
        try:
            return _BOOLS[s] if s in _BOOLS else _BOOLS[s.lower()]
        except KeyError:
            raise ExportInvalid(f"{_short(s)} is not true or false", line, "control_plane_component") from None

    def _time(self, s: str, line: int) -> datetime:
        t = self._times.get(s)
        if t is None:
            try:
                t = datetime.fromisoformat(s)
            except ValueError:
                t = None
            if t is None or t.tzinfo is None or "T" not in s:
                raise ExportInvalid(f"{_short(s)} is not an RFC 3339 UTC time", line, "period_start")
            if len(self._times) < 100_000:
                self._times[s] = t
        return t

    def _decimal(self, s: str, line: int) -> Decimal:
        d = self._decimals.get(s)
        if d is None:
            if not _DECIMAL.fullmatch(s):
                raise ExportInvalid(f"{_short(s)} is not a decimal number", line, "quantity")
            d = Decimal(s)
            if len(self._decimals) < 100_000:
                self._decimals[s] = d
        return d


def _short(s: str, n: int = 40) -> str:
    """A value quoted for a message, cut to n characters."""
    return repr(s if len(s) <= n else s[:n] + "…")
