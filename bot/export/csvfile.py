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
import shutil
import tempfile
from collections import deque
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TypeVar

from bot.export.lines import ExportLine
from bot.export.parse import ExportInvalid, LineParser
from bot.export.scan import PartScan

__all__ = ["DEFAULT_MAX_BYTES", "ExportFile", "ExportInvalid", "open_export"]

#: The largest export read from a file or a URL (a Slack file has its own, smaller cap).
DEFAULT_MAX_BYTES = 1 << 30
_CHUNK = 1 << 20
T = TypeVar("T")


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
        others skipped unchecked (a cheap second pass for a finding's words)."""
        for no, values in self._read(lambda scan: scan.records(only), full=only is None):
            yield no, ExportLine._make(values)

    def first_line(self) -> ExportLine | None:
        """The first line, checked (its errors are the full read's), or None for no line."""
        lines = self._read(lambda scan: scan.records(None), full=False)
        try:
            got = next(lines, None)
        finally:
            lines.close()
        return None if got is None else ExportLine._make(got[1])

    def texts(self) -> Iterator[tuple[str, str]]:
        """``(ledger_entry_id, canonical text)`` of every line, checked (``bot.export.canon``):
        the hot path of a million lines builds no typed tuple for a plain line."""
        return self._read(PartScan.texts, full=True)

    def _read(self, each: Callable[[PartScan], Iterator[T]], *, full: bool) -> Generator[T, None, None]:
        """``each`` of every part's scan, in order, its errors naming the part; after a
        ``full`` read, what it found (digest, size, count, org, months, projects) is kept."""
        digest = _Digest() if full else None
        try:
            yield from self._parts(each, digest)
        finally:
            if digest is not None:
                digest.close()

    def _parts(self, each: Callable[[PartScan], Iterator[T]], digest: _Digest | None) -> Iterator[T]:
        size, n = 0, 0
        parser = LineParser(self.expected_org)
        for label, stream in self.parts:
            stream.seek(0)
            tap = _Tap(stream, self.max_bytes - size, digest, self.max_bytes)
            text = io.TextIOWrapper(io.BufferedReader(tap, _CHUNK), encoding="utf-8-sig", newline="")
            parser.start(label)
            try:
                scan = PartScan.start(text, parser)
                yield from each(scan)
            except UnicodeDecodeError:
                raise ExportInvalid("the file is not UTF-8 text", label=label) from None
            except csv.Error as e:  # the header's (a record's is raised by the scan)
                raise ExportInvalid(f"not CSV as RFC 4180 has it ({e})", 1, label=label) from None
            except ExportInvalid as e:
                if not label or e.label:
                    raise
                raise ExportInvalid(e.reason, e.line, e.column, label=label) from None
            n += scan.count
            size += tap.size
        if digest is not None:
            self.sha256, self.size, self.count = digest.hexdigest(), size, n
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


class _Digest:
    """The SHA-256 of the bytes read, computed beside the parse: hashlib lets go of the GIL
    for a large chunk, so a thread of its own hashes each chunk, in order, while the
    parse goes on."""

    AHEAD = 4  # chunks handed over and not yet hashed, at most (memory: a few MB)

    def __init__(self) -> None:
        self.sha = hashlib.sha256()
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="export-sha256")
        self._pending: deque[Future[None]] = deque()

    def update(self, data: bytes) -> None:
        self._pending.append(self._pool.submit(self.sha.update, data))
        while len(self._pending) > self.AHEAD:
            self._pending.popleft().result()

    def hexdigest(self) -> str:
        self.close()
        return self.sha.hexdigest()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=False)


class _Tap(io.RawIOBase):
    """Reads through to a binary stream, counting (and digesting, given a ``_Digest``),
    refusing past the cap."""

    def __init__(self, src: IO[bytes], max_bytes: int, digest: _Digest | None = None,
                 cap: int | None = None) -> None:
        self.src, self.max_bytes, self.cap = src, max_bytes, cap or max_bytes
        self.digest = digest
        self.size = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b: memoryview) -> int:  # type: ignore[override]
        data = self.src.read(len(b))
        n = len(data)
        self.size += n
        if self.size > self.max_bytes:
            raise ExportInvalid(f"the file is larger than {self.cap:,} bytes")
        if self.digest is not None:
            self.digest.update(data)
        b[:n] = data
        return n

    def read(self, size: int = -1) -> bytes:
        buf = bytearray(_CHUNK if size < 0 else size)
        n = self.readinto(memoryview(buf))
        return bytes(buf[:n])


