"""Evidence from a folder instead of Loki and Tempo (protocols.md §6).

Folder layout::

    <folder>/
      logs/*.jsonl     logcli ``query --output=jsonl`` output, one entry a line:
                       {"labels": {"service": "gpuaas-api", …},
                        "line": "<the JSON log line, as a string>",
                        "timestamp": "2026-01-01T00:00:00.123456789Z"}
                       (RFC 3339 with up to 9 fractional digits; ``labels`` may be
                       absent (``--no-labels``): then ``service`` comes from the line)
      traces/*.json    one trace per file, any shape Tempo or Grafana writes:
                       v1 ``{"batches": …}``, v2 ``{"trace": {"resourceSpans": …}}``,
                       tempo-cli ``{"resourceSpans": …}``; ids base64 or hex.
                       Named ``<trace_id>.json`` by convention; traces are found by
                       the ids inside the files, not by the name.

``OfflineEvidence(folder)`` gives an ``OfflineLogSource`` (``.logs``) and an
``OfflineTraceSource`` (``.traces``) that answer like the HTTP sources for the same
data. The folder is read once, on first use (``refresh()`` forgets it). A missing
folder (or a missing ``logs/`` or ``traces/`` in it) is ``SourceUnavailable``; an
unreadable or malformed file or line is skipped, logged and counted.

The log source evaluates a ``LogQuery`` itself: the entry's service matches
``q.matches_service``, the line is a JSON object, ``str(line[q.field]) == q.value``
(booleans as ``true``/``false``, as Loki's ``| json`` renders them), and the timestamp
lies in the window.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bot.diagnosis.model import LogEvent, Span, Window
from bot.errors import SourceError, SourceFailure, SourceUnavailable
from bot.gcpause import freeze_long_lived
from bot.sources.logql import LogQuery
from bot.sources.loki import RawEntry, build_events
from bot.sources.otlp import datetime_to_ns, parse_trace_json
from bot.sources.protocols import Fetched, SourceCall
from bot.sources.tempo import validate_trace_id

__all__ = ["OfflineEvidence", "OfflineLogSource", "OfflineTraceSource", "parse_rfc3339_ns"]

log = logging.getLogger(__name__)

_RFC3339_RE = re.compile(r"(\d{4}-\d\d-\d\d)[Tt ](\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|z|[+-]\d\d:\d\d)")


def parse_rfc3339_ns(text: str) -> int:
    """An RFC 3339 timestamp with up to 9 fractional digits as ns since the epoch."""
    m = _RFC3339_RE.fullmatch(text.strip()) if isinstance(text, str) else None
    if m is None:
        raise ValueError(f"timestamp {text!r} is not RFC 3339")
    date, clock, frac, offset = m.groups()
    offset = "+00:00" if offset in ("Z", "z") else offset
    base = datetime.fromisoformat(f"{date}T{clock}{offset}")
    return datetime_to_ns(base) + int((frac or "0").ljust(9, "0"))


def _label_value(v: Any) -> str:
    """A JSON value as Loki's ``| json`` stage renders it as a label."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return v
    if isinstance(v, (dict, list)):
        return json.dumps(v, separators=(",", ":"))
    return str(v)


@dataclass(slots=True)
class _LogIndex:
    entries: list[tuple[RawEntry, str, dict[str, Any]]]  # entry, service, parsed line
    files: int
    skipped_files: int
    skipped_lines: int
    by_field: dict[str, dict[str, list[int]]] = field(default_factory=dict)


@dataclass(slots=True)
class _TraceIndex:
    spans: dict[str, list[Span]]
    paths: dict[str, list[str]]
    files: int
    skipped_files: int


class OfflineEvidence:
    """An evidence folder, indexed lazily; ``.logs`` and ``.traces`` read it."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self._lock = asyncio.Lock()
        self._logs: _LogIndex | None = None
        self._traces: _TraceIndex | None = None
        self.logs = OfflineLogSource(self)
        self.traces = OfflineTraceSource(self)

    async def prepare(self) -> None:
        """Index the folder now (the first query would), as ``recon serve`` does at start."""
        started = time.perf_counter()
        try:
            await self.log_index()
            await self.trace_index()
        except SourceFailure as exc:  # the diagnoses will say so, step by step
            log.warning("evidence folder %s not indexed: %s", self.folder, exc.reason)
            return
        log.info("evidence folder %s indexed in %.2f s", self.folder, time.perf_counter() - started)

    @property
    def via(self) -> str:
        return f"offline:{self.folder}"

    def refresh(self) -> None:
        """Forget the index; the next query reads the folder again."""
        self._logs = None
        self._traces = None

    def _subdir(self, name: str, source: str) -> Path:
        if not self.folder.is_dir():
            raise SourceUnavailable(source, f"evidence folder {self.folder} does not exist")
        sub = self.folder / name
        if not sub.is_dir():
            raise SourceUnavailable(source, f"evidence folder {self.folder} has no {name}/ folder")
        return sub

    async def log_index(self) -> _LogIndex:
        async with self._lock:
            if self._logs is None:
                self._logs = await asyncio.to_thread(self._read_logs)
                freeze_long_lived()  # the index lives as long as the process: keep it out of full collections
            return self._logs

    async def trace_index(self) -> _TraceIndex:
        async with self._lock:
            if self._traces is None:
                self._traces = await asyncio.to_thread(self._read_traces)
                freeze_long_lived()
            return self._traces

    # ---------------------------------------------------------------- reading

    def _read_logs(self) -> _LogIndex:
        sub = self._subdir("logs", "loki")
        entries: list[tuple[RawEntry, str, dict[str, Any]]] = []
        files = skipped_files = skipped_lines = 0
        for path in sorted(sub.glob("*.jsonl")):
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as e:
                log.warning("offline: skipping unreadable log file %s: %s", path, e)
                skipped_files += 1
                continue
            files += 1
            bad = 0
            for n, raw in enumerate(text.splitlines(), 1):
                if not raw.strip():
                    continue
                try:
                    entries.append(_log_entry(raw))
                except ValueError as e:
                    bad += 1
                    if bad <= 3:
                        log.warning("offline: skipping %s line %d: %s", path, n, e)
            if bad:
                log.warning("offline: skipped %d malformed lines in %s", bad, path)
            skipped_lines += bad
        log.info("offline: indexed %d log entries from %d files in %s", len(entries), files, sub)
        return _LogIndex(entries, files, skipped_files, skipped_lines)

    def _read_traces(self) -> _TraceIndex:
        sub = self._subdir("traces", "tempo")
        spans: dict[str, list[Span]] = {}
        paths: dict[str, list[str]] = {}
        seen: set[tuple[str, str]] = set()
        files = skipped = 0
        for path in sorted(sub.glob("*.json")):
            try:
                parsed = parse_trace_json(json.loads(path.read_text(encoding="utf-8")))
            except (OSError, UnicodeDecodeError, ValueError) as e:
                log.warning("offline: skipping trace file %s: %s", path, e)
                skipped += 1
                continue
            files += 1
            for s in parsed:
                if (s.trace_id, s.span_id) in seen:
                    continue
                seen.add((s.trace_id, s.span_id))
                spans.setdefault(s.trace_id, []).append(s)
                if str(path) not in paths.setdefault(s.trace_id, []):
                    paths[s.trace_id].append(str(path))
        log.info("offline: indexed %d traces from %d files in %s", len(spans), files, sub)
        return _TraceIndex(spans, paths, files, skipped)


def _log_entry(raw: str) -> tuple[RawEntry, str, dict[str, Any]]:
    try:
        obj = json.loads(raw)
    except ValueError:
        raise ValueError("not JSON") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("line"), str):
        raise ValueError("not a logcli jsonl entry (no string 'line')")
    labels_raw = obj.get("labels") or {}
    if not isinstance(labels_raw, Mapping):
        raise ValueError("'labels' is not an object")
    labels = {str(k): str(v) for k, v in labels_raw.items()}
    entry = RawEntry(parse_rfc3339_ns(obj.get("timestamp", "")), labels, obj["line"])
    try:
        line = json.loads(entry.line)
    except ValueError:
        line = None
    if not isinstance(line, dict):
        line = {}  # kept so a query's counts match Loki's; never matches a field filter
    service = labels.get("service") or line.get("service") or labels.get("service_name") or ""
    return entry, str(service), line


class OfflineLogSource:
    """A ``LogSource`` over ``<folder>/logs/*.jsonl``."""

    def __init__(self, evidence: OfflineEvidence) -> None:
        self._ev = evidence

    @property
    def label(self) -> str:
        return f"offline folder {self._ev.folder}"

    async def query(self, q: LogQuery, window: Window) -> Fetched[LogEvent]:
        started_at = datetime.now(UTC)
        t0 = time.perf_counter()
        try:
            idx = await self._ev.log_index()
            by_value = idx.by_field.get(q.field)
            if by_value is None:
                by_value = {}
                for i, (_e, _s, line) in enumerate(idx.entries):
                    if q.field in line:
                        by_value.setdefault(_label_value(line[q.field]), []).append(i)
                idx.by_field[q.field] = by_value
            lo, hi = datetime_to_ns(window.start), datetime_to_ns(window.end)
            matched = [
                idx.entries[i][0]
                for i in by_value.get(q.value, [])
                if lo <= idx.entries[i][0].ts_ns < hi and q.matches_service(idx.entries[i][1])
            ]
            events, _ = build_events(matched)
        except SourceFailure:
            raise
        except Exception as e:
            log.exception("unexpected error reading offline logs")
            raise SourceError("loki", f"offline logs: unexpected {type(e).__name__}: {e}") from e
        call = SourceCall(
            source="loki",
            kind="logql",
            request=q.logql,
            params={
                "entries": len(events),
                "files": idx.files,
                "skipped_files": idx.skipped_files,
                "skipped_lines": idx.skipped_lines,
            },
            window=window,
            started_at=started_at,
            duration_ms=(time.perf_counter() - t0) * 1000.0,
            via=self._ev.via,
        )
        return Fetched(events, call)


class OfflineTraceSource:
    """A ``TraceSource`` over ``<folder>/traces/*.json``."""

    def __init__(self, evidence: OfflineEvidence) -> None:
        self._ev = evidence

    @property
    def label(self) -> str:
        return f"offline folder {self._ev.folder}"

    async def get_trace(self, trace_id: str, window: Window) -> Fetched[Span]:
        validate_trace_id(trace_id)
        started_at = datetime.now(UTC)
        t0 = time.perf_counter()
        try:
            idx = await self._ev.trace_index()
        except SourceFailure:
            raise
        except Exception as e:
            log.exception("unexpected error reading offline traces")
            raise SourceError("tempo", f"offline traces: unexpected {type(e).__name__}: {e}") from e
        spans = list(idx.spans.get(trace_id, []))
        paths = idx.paths.get(trace_id, [])
        call = SourceCall(
            source="tempo",
            kind="trace",
            request=", ".join(paths) if paths else str(self._ev.folder / "traces" / f"{trace_id}.json"),
            params={
                "trace_id": trace_id,
                "spans": len(spans),
                "files": idx.files,
                "skipped_files": idx.skipped_files,
            },
            window=window,
            started_at=started_at,
            duration_ms=(time.perf_counter() - t0) * 1000.0,
            via=self._ev.via,
        )
        return Fetched(spans, call)
