"""Logs from Grafana Loki over HTTP: ``GET /loki/api/v1/query_range``, paginated.

Pagination follows logcli (protocols.md §4): queries go forward with ``limit=batch``;
after a full batch the next query starts at the last timestamp seen (``start`` is
inclusive), and entries of that timestamp already seen are dropped. It stops when a
batch comes back short, or at ``max_entries`` (noted as ``truncated``). A full batch
whose entries all share one timestamp cannot be paged past: that is a ``SourceError``
asking for a larger batch.

The client sends ``X-Loki-Response-Encoding-Flags: categorize-labels`` so stream
labels stay the indexed ones (``service``, ``env``, ``level``), and parses both value
shapes: ``[ts, line]`` and ``[ts, line, {"structuredMetadata", "parsed"}]``.

Each line is one JSON object (platform.md); other lines are skipped and counted.
Failures: unreachable, DNS, timeout -> ``SourceUnavailable``; an HTTP error status,
malformed JSON or the wrong shape -> ``SourceError``; never anything else.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

import httpx
import msgspec

from bot.diagnosis.model import LogEvent, Window
from bot.errors import SourceError, SourceFailure, SourceUnavailable
from bot.sources import jsonload
from bot.sources.http import HttpSource
from bot.sources.logql import LogQuery
from bot.sources.otlp import datetime_to_ns, ns_to_datetime
from bot.sources.protocols import Fetched, SourceCall

__all__ = ["LokiLogSource", "RawEntry", "build_events", "parse_query_range"]

log = logging.getLogger(__name__)

SOURCE = "loki"
QUERY_RANGE_PATH = "/loki/api/v1/query_range"
ERROR_BODY_CHARS = 200
CATEGORIZE_HEADER = "X-Loki-Response-Encoding-Flags"


@dataclass(frozen=True, slots=True)
class RawEntry:
    """One log entry as stored: timestamp (ns), its stream labels, the line text."""

    ts_ns: int
    labels: Mapping[str, str]
    line: str

    def key(self) -> tuple[int, tuple[tuple[str, str], ...], str]:
        return (self.ts_ns, tuple(sorted(self.labels.items())), self.line)


def _event(entry: RawEntry) -> LogEvent | None:
    try:
        obj = jsonload.loads(entry.line)
    except ValueError:
        return None
    if not isinstance(obj, dict):
        return None
    labels = entry.labels
    service = labels.get("service") or obj.get("service") or labels.get("service_name") or ""
    event = obj.get("event")
    # the stream's labels are shared by its events, never copied: a LogEvent's are read-only
    return LogEvent(ns_to_datetime(entry.ts_ns), str(service),
                    event if isinstance(event, str) else ("" if event is None else str(event)), obj, labels)


def build_events(entries: Iterable[RawEntry]) -> tuple[list[LogEvent], int]:
    """LogEvents of the JSON-object lines, oldest first (ties by service, then line text),
    and how many lines were skipped because they were not JSON objects."""
    built: list[tuple[int, str, str, LogEvent]] = []
    skipped = 0
    for e in entries:
        ev = _event(e)
        if ev is None:
            skipped += 1
            continue
        built.append((e.ts_ns, ev.service, e.line, ev))
    built.sort(key=lambda t: (t[0], t[1], t[2]))
    return [t[3] for t in built], skipped


def _labels(v: Any, what: str) -> dict[str, str]:
    if v is None:
        return {}
    if not isinstance(v, Mapping):
        raise ValueError(f"{what} must be an object")
    return {str(k): str(x) for k, x in v.items()}


def parse_query_range(doc: Any) -> list[RawEntry]:
    """The entries of a ``query_range`` stream response (either value shape).
    Raises ``ValueError`` when the document is not a successful streams response."""
    if not isinstance(doc, Mapping):
        raise ValueError("response is not a JSON object")
    if doc.get("status") != "success":
        raise ValueError(f"response status is {doc.get('status')!r}, not 'success'")
    data = doc.get("data")
    if not isinstance(data, Mapping) or not isinstance(data.get("result"), list):
        raise ValueError("response has no data.result list")
    rtype = data.get("resultType", "streams")
    if rtype != "streams":
        raise ValueError(f"resultType is {rtype!r}; a log query returns 'streams'")
    out: list[RawEntry] = []
    for i, stream in enumerate(data["result"]):
        if not isinstance(stream, Mapping):
            raise ValueError(f"result[{i}] is not an object")
        labels = _labels(stream.get("stream"), f"result[{i}].stream")
        values = stream.get("values")
        if not isinstance(values, list):
            raise ValueError(f"result[{i}].values is not a list")
        for v in values:
            if not isinstance(v, list) or len(v) not in (2, 3) or not isinstance(v[1], str):
                raise ValueError(f"result[{i}] has a malformed value {str(v)[:80]!r}")
            try:
                ts = int(v[0])
            except (TypeError, ValueError):
                raise ValueError(f"result[{i}] has a malformed timestamp {v[0]!r}") from None
            out.append(RawEntry(ts, labels, v[1]))
    return out


class _Value(msgspec.Struct, array_like=True, forbid_unknown_fields=True):
    ts: str
    line: str
    # the entry's structured metadata and parsed labels (categorize-labels): kept raw,
    # never decoded (the line's own JSON is what the checks read)
    meta: msgspec.Raw = msgspec.Raw(b"null")


class _Stream(msgspec.Struct):
    values: list[_Value]
    stream: dict[str, str] | None = None


class _Data(msgspec.Struct):
    result: list[_Stream]
    resultType: str = "streams"


class _QueryRange(msgspec.Struct):
    data: _Data
    status: Any = None


_QUERY_RANGE = msgspec.json.Decoder(_QueryRange)


def parse_query_range_bytes(data: bytes) -> list[RawEntry] | None:
    """``parse_query_range(json.loads(data))`` decoded straight into typed structs (the
    entries' metadata left undecoded), or None when this fast path does not take the
    answer exactly as ``parse_query_range`` would: the caller then decodes it generically,
    so the entries, or the error, are always ``parse_query_range``'s."""
    try:
        doc = _QUERY_RANGE.decode(data)
        if doc.status != "success" or doc.data.resultType != "streams":
            return None
        out: list[RawEntry] = []
        for stream in doc.data.result:
            labels = stream.stream or {}
            out.extend([RawEntry(int(v.ts), labels, v.line) for v in stream.values])
        return out
    except (msgspec.DecodeError, ValueError):  # ValidationError is a DecodeError
        return None


class LokiLogSource(HttpSource):
    """A ``LogSource`` over Loki's HTTP API."""

    name = "loki"

    def __init__(
        self,
        base_url: str,
        tenant: str | None = None,
        timeout_s: float = 10.0,
        batch: int = 1000,
        max_entries: int = 20000,
        client: httpx.AsyncClient | None = None,
        *,
        categorize_labels: bool = True,
        user: str | None = None,
        password: str | None = None,
        bearer_token: str | None = None,
    ) -> None:
        if batch < 1 or max_entries < 1:
            raise ValueError("batch and max_entries must be at least 1")
        super().__init__(base_url, tenant, timeout_s, client, user=user, password=password,
                         bearer_token=bearer_token)
        self.batch = batch
        self.max_entries = max_entries
        self.categorize_labels = categorize_labels

    def _headers(self) -> dict[str, str]:
        h = super()._headers()
        if self.categorize_labels:
            h[CATEGORIZE_HEADER] = "categorize-labels"
        return h

    async def _get(self, params: Mapping[str, str]) -> bytes:
        # the query in the URL itself: httpx's params= would replace the base URL's query
        url = self.url(f"{QUERY_RANGE_PATH}?{urlencode(params, quote_via=quote)}")
        try:
            resp = await self._client.get(url, headers=self._headers(), timeout=self.timeout_s)
        except httpx.TimeoutException as e:
            raise SourceUnavailable(
                SOURCE, f"no answer from {self.base_url} within {self.timeout_s}s ({type(e).__name__})"
            ) from e
        except (httpx.TransportError, httpx.InvalidURL) as e:
            raise SourceUnavailable(SOURCE, f"cannot reach {self.base_url}: {self.scrub(str(e)) or type(e).__name__}"
                                    ) from e
        if not resp.is_success:
            body = self.scrub(resp.text.strip())[:ERROR_BODY_CHARS]
            raise SourceError(SOURCE, f"HTTP {resp.status_code}: {body}")
        return resp.content

    def _entries(self, content: bytes) -> list[RawEntry]:
        fast = parse_query_range_bytes(content)
        if fast is not None:
            return fast
        try:
            doc = jsonload.loads(content)
        except ValueError as e:
            raise SourceError(SOURCE, f"malformed JSON from {self.shown_url(QUERY_RANGE_PATH)}: {e}") from e
        try:
            return parse_query_range(doc)
        except ValueError as e:
            raise SourceError(SOURCE, f"unexpected response shape: {e}") from e

    async def query(self, q: LogQuery, window: Window) -> Fetched[LogEvent]:
        """All JSON log events the query matches in [window.start, window.end)."""
        started_at = datetime.now(UTC)
        t0 = time.perf_counter()
        try:
            entries, pages, truncated = await self._paginate(q.logql, window)
            events, skipped = build_events(entries)
        except SourceFailure:
            raise
        except Exception as e:  # the Protocol promises SourceFailure only
            log.exception("unexpected error querying loki")
            raise SourceError(SOURCE, f"unexpected {type(e).__name__}: {self.scrub(str(e))}") from e
        if skipped:
            log.info("loki: skipped %d lines that are not JSON objects", skipped)
        call = SourceCall(
            source=SOURCE,
            kind="logql",
            request=q.logql,
            params={
                "limit": self.batch,
                "direction": "forward",
                "pages": pages,
                "entries": len(entries),
                "skipped_lines": skipped,
                "max_entries": self.max_entries,
                "truncated": truncated,
            },
            window=window,
            started_at=started_at,
            duration_ms=(time.perf_counter() - t0) * 1000.0,
            via=self.base_url,
        )
        return Fetched(events, call)

    async def _paginate(self, logql: str, window: Window) -> tuple[list[RawEntry], int, bool]:
        start = datetime_to_ns(window.start)
        end = datetime_to_ns(window.end)
        collected: list[RawEntry] = []
        boundary: set[tuple[int, tuple[tuple[str, str], ...], str]] = set()
        pages = 0
        while start < end:
            params = {
                "query": logql,
                "start": str(start),
                "end": str(end),
                "direction": "forward",
                "limit": str(self.batch),
            }
            batch = self._entries(await self._get(params))
            pages += 1
            batch.sort(key=lambda e: e.ts_ns)
            if boundary:  # the previous page's last timestamp: its entries are here again
                collected.extend(e for e in batch if e.key() not in boundary)
            else:
                collected.extend(batch)
            if len(collected) >= self.max_entries and (len(batch) >= self.batch or len(collected) > self.max_entries):
                log.warning(
                    "loki: stopped at max_entries=%d for %s; results are truncated",
                    self.max_entries,
                    logql,
                )
                return collected[: self.max_entries], pages, True
            if len(batch) < self.batch:
                break
            last_ts = batch[-1].ts_ns
            if batch[0].ts_ns == last_ts:
                raise SourceError(
                    SOURCE,
                    f"all {len(batch)} entries of a full batch share the timestamp {last_ts}; "
                    "pagination cannot move past it: increase RECON_LOKI_BATCH",
                )
            boundary = {e.key() for e in batch if e.ts_ns == last_ts}
            start = last_ts
        return collected, pages, False
