"""Reading a usage export file: streamed, checked, digested.

The file is CSV as RFC 4180 has it (quoted fields with commas, quotes and newlines),
UTF-8 (a byte-order mark is allowed), with a header row; columns come in any order and
unknown columns are ignored. Every value is checked as it is read: a missing required
column, a malformed number, date or boolean, a line of another org, a line with the
wrong number of fields, a file that is not UTF-8 text or not CSV, or one larger than
the cap raises ``ExportInvalid`` naming the line and column. The caller learns about a
bad file before anything is recorded: nothing is half-read.

An ``ExportFile`` is always seekable (a stream that is not, such as stdin, is first
copied to a temporary file, within the size cap), so a second pass can fetch the few
lines a finding needs without holding the file in memory. ``lines()`` yields
``(line number, ExportLine)``; the line number is the file's physical line where the
record ends (the header is line 1).
"""

from __future__ import annotations

import csv
import hashlib
import io
import operator
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

from bot.errors import BadInput
from bot.export.lines import COLUMNS, ExportLine

#: The largest export read from a file or a URL (a Slack file has its own, smaller cap).
DEFAULT_MAX_BYTES = 1 << 30
MAX_ID_CHARS = 128
_CHUNK = 1 << 20

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


@dataclass(slots=True)
class ExportFile:
    """A seekable export (one file, or one fetched body per month) and what its first full
    read found. Several parts are read as one export: one org, their lines together, one
    SHA-256 over all their bytes in order."""

    parts: list[tuple[str, IO[bytes]]]  # (label for messages, stream)
    origin: str
    max_bytes: int = DEFAULT_MAX_BYTES
    expected_org: str | None = None
    sha256: str = ""
    size: int = 0
    count: int = 0
    org_id: str | None = None
    months: set[str] = field(default_factory=set)
    projects: set[str] = field(default_factory=set)

    def close(self) -> None:
        for _, stream in self.parts:
            stream.close()

    def lines(self, only: set[int] | None = None) -> Iterator[tuple[int, ExportLine]]:
        """Every line, checked, with its line number. The first full pass also digests the
        bytes and counts. ``only``: the lines whose ``hash(ledger_entry_id)`` is in it, the
        others skipped unparsed (a cheap second pass for a finding's words)."""
        for no, values in self._records(only):
            yield no, ExportLine._make(values)

    def tuples(self) -> Iterator[tuple[int, tuple[Any, ...]]]:
        """As ``lines()``, each line a plain tuple equal to (and hashing as) its ``ExportLine``:
        the hot path of a million lines does not build named tuples."""
        return self._records(None)

    def _records(self, only: set[int] | None) -> Iterator[tuple[int, tuple[Any, ...]]]:
        sha, size, n = hashlib.sha256(), 0, 0
        parser = _LineParser(self.expected_org)
        for label, stream in self.parts:
            stream.seek(0)
            tap = _Tap(stream, self.max_bytes - size, sha, self.max_bytes)
            text = io.TextIOWrapper(io.BufferedReader(tap, _CHUNK), encoding="utf-8-sig", newline="")
            parser.start(label)
            try:
                reader = csv.reader(text, strict=True)
                parser.header(next(reader, None))
                key_at = parser.index[0]
                for rec in reader:
                    if not rec:
                        continue  # a blank line
                    n += 1
                    if only is None or hash(rec[key_at]) in only:
                        yield reader.line_num, parser.parse(rec, reader.line_num)
            except UnicodeDecodeError:
                raise ExportInvalid("the file is not UTF-8 text", label=label) from None
            except csv.Error as e:
                raise ExportInvalid(f"not CSV as RFC 4180 has it ({e})", parser.last_line + 1,
                                    label=label) from None
            except IndexError:
                raise ExportInvalid(f"fewer fields than the header's {parser.width}", reader.line_num,
                                    label=label) from None
            except ExportInvalid as e:
                if not label or e.label:
                    raise
                raise ExportInvalid(e.reason, e.line, e.column, label=label) from None
            size += tap.size
        if only is None:
            self.sha256, self.size, self.count = sha.hexdigest(), size, n
            self.org_id = parser.org_id or self.expected_org
            self.months, self.projects = parser.months, parser.projects


def open_export(source: Path | bytes | IO[bytes], origin: str, *, max_bytes: int = DEFAULT_MAX_BYTES,
                expected_org: str | None = None) -> ExportFile:
    """An ``ExportFile`` over a path, bytes, or a binary stream (copied if not seekable)."""
    if isinstance(source, Path):
        try:
            if source.stat().st_size > max_bytes:
                raise ExportInvalid(f"the file is larger than {max_bytes:,} bytes")
            stream: IO[bytes] = source.open("rb")
        except OSError as e:
            raise ExportInvalid(f"cannot read {source.name}: {e.strerror or e}") from None
    elif isinstance(source, bytes):
        if len(source) > max_bytes:
            raise ExportInvalid(f"the file is larger than {max_bytes:,} bytes")
        stream = io.BytesIO(source)
    elif source.seekable():
        stream = source
    else:
        stream = _spool(source, max_bytes)
    return ExportFile([("", stream)], origin, max_bytes=max_bytes, expected_org=expected_org)


def _spool(src: IO[bytes], max_bytes: int) -> IO[bytes]:
    tmp = tempfile.TemporaryFile()  # noqa: SIM115 - handed to the ExportFile, closed by it
    try:
        shutil.copyfileobj(_Tap(src, max_bytes), tmp, _CHUNK)
    except BaseException:
        tmp.close()
        raise
    return tmp


class _Tap(io.RawIOBase):
    """Reads through to a binary stream, hashing and counting, refusing past the cap."""

    def __init__(self, src: IO[bytes], max_bytes: int, sha: Any = None, cap: int | None = None) -> None:
        self.src, self.max_bytes, self.cap = src, max_bytes, cap or max_bytes
        self.sha = sha if sha is not None else hashlib.sha256()
        self.size = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b: memoryview) -> int:  # type: ignore[override]
        data = self.src.read(len(b))
        n = len(data)
        self.size += n
        if self.size > self.max_bytes:
            raise ExportInvalid(f"the file is larger than {self.cap:,} bytes")
        self.sha.update(data)
        b[:n] = data
        return n

    def read(self, size: int = -1) -> bytes:
        buf = bytearray(_CHUNK if size < 0 else size)
        n = self.readinto(memoryview(buf))
        return bytes(buf[:n])


class _LineParser:
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
        self._kinds: set[str] = set()
        self._currencies: set[str] = set()
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
        if kind not in self._kinds:
            if not _KIND.fullmatch(kind):
                raise ExportInvalid(f"{_short(kind)} is not a ledger entry kind", line, "line_kind")
            self._kinds.add(kind)
        digits = amount[1:] if amount[:1] == "-" else amount
        if not (digits.isascii() and digits.isdigit() and len(digits) <= 18):
            raise ExportInvalid(f"{_short(amount)} is not a whole number of minor units", line, "amount_minor")
        if currency not in self._currencies:
            if not _CURRENCY.fullmatch(currency):
                raise ExportInvalid(f"{_short(currency)} is not an ISO 4217 currency code", line, "currency")
            self._currencies.add(currency)
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
