"""A Loki stand-in: ``GET /loki/api/v1/query_range`` over in-memory log entries.

It understands the query shape the bot sends (protocols.md §4)::

    {service=~"gpuaas-(api|…)", env="prod"} | json | correlation_id="<value>"

(stream matchers ``= != =~ !~``, a ``| json`` stage, label filters ``= != =~ !~``;
Go string literals with escapes, or backquoted raw strings). Anything else is
``400 parse error``. It honours ``start`` (inclusive) / ``end`` (exclusive, ns),
``limit`` (default 100; above ``max_entries_limit`` the documented 400), and
``direction`` (default backward). ``| json`` flattens nested keys with ``_``, skips
arrays, and renames keys that clash with stream labels ``<key>_extracted``, as Loki
does. With ``X-Loki-Response-Encoding-Flags: categorize-labels`` values are
``[ts, line, {"parsed": {…}}]`` and streams keep their indexed labels; without it,
parsed labels join the stream labels (one stream per label set).

When ``tenant`` is set, a request without ``X-Scope-OrgID`` gets ``401 no org id``
and one for another tenant sees no data.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from tests.standins import StandIn

__all__ = ["LogqlParseError", "LokiEntry", "LokiStandIn", "loki_standin", "parse_logql", "to_rfc3339_nano"]

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_ns(t: datetime | int) -> int:
    if isinstance(t, int):
        return t
    return ((t - EPOCH) // timedelta(microseconds=1)) * 1000


def to_rfc3339_nano(ts_ns: int) -> str:
    """Go's ``time.RFC3339Nano`` in UTC: trailing zeros of the fraction trimmed."""
    secs, frac = divmod(ts_ns, 10**9)
    base = (EPOCH + timedelta(seconds=secs)).strftime("%Y-%m-%dT%H:%M:%S")
    f = f"{frac:09d}".rstrip("0")
    return f"{base}.{f}Z" if f else f"{base}Z"


@dataclass(frozen=True, slots=True)
class LokiEntry:
    """One stored entry: ns timestamp, stream labels, line text, structured metadata."""

    ts_ns: int
    labels: Mapping[str, str]
    line: str
    structured_metadata: Mapping[str, str] = field(default_factory=dict)


# ---------------------------------------------------------------- LogQL subset


class LogqlParseError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Matcher:
    name: str
    op: str  # = != =~ !~
    value: str

    def matches(self, labels: Mapping[str, str]) -> bool:
        v = labels.get(self.name, "")
        if self.op == "=":
            return v == self.value
        if self.op == "!=":
            return v != self.value
        found = re.fullmatch(self.value, v) is not None
        return found if self.op == "=~" else not found


@dataclass(frozen=True, slots=True)
class ParsedQuery:
    selector: tuple[Matcher, ...]
    stages: tuple[Matcher | str, ...]  # "json" or a label filter


_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\", '"': '"'}


class _Lexer:
    def __init__(self, text: str) -> None:
        self.s = text
        self.i = 0

    def ws(self) -> None:
        while self.i < len(self.s) and self.s[self.i] in " \t\r\n":
            self.i += 1

    def peek(self, tok: str) -> bool:
        self.ws()
        return self.s.startswith(tok, self.i)

    def expect(self, tok: str) -> None:
        if not self.peek(tok):
            raise LogqlParseError(f"expected {tok!r} at position {self.i}")
        self.i += len(tok)

    def ident(self) -> str:
        self.ws()
        m = re.compile(r"[A-Za-z_][A-Za-z0-9_]*").match(self.s, self.i)
        if m is None:
            raise LogqlParseError(f"expected an identifier at position {self.i}")
        self.i = m.end()
        return m.group(0)

    def op(self) -> str:
        self.ws()
        for op in ("=~", "!~", "!=", "="):
            if self.s.startswith(op, self.i):
                self.i += len(op)
                return op
        raise LogqlParseError(f"expected a match operator at position {self.i}")

    def string(self) -> str:
        self.ws()
        if self.s.startswith("`", self.i):
            end = self.s.find("`", self.i + 1)
            if end < 0:
                raise LogqlParseError("unterminated raw string")
            out = self.s[self.i + 1 : end]
            self.i = end + 1
            return out
        if not self.s.startswith('"', self.i):
            raise LogqlParseError(f"expected a string at position {self.i}")
        self.i += 1
        out_chars: list[str] = []
        while self.i < len(self.s):
            c = self.s[self.i]
            if c == '"':
                self.i += 1
                return "".join(out_chars)
            if c in "\n":
                raise LogqlParseError("newline in string")
            if c == "\\":
                nxt = self.s[self.i + 1 : self.i + 2]
                if nxt in _ESCAPES:
                    out_chars.append(_ESCAPES[nxt])
                    self.i += 2
                elif nxt == "x":
                    out_chars.append(chr(int(self.s[self.i + 2 : self.i + 4], 16)))
                    self.i += 4
                elif nxt in ("u", "U"):
                    n = 4 if nxt == "u" else 8
                    out_chars.append(chr(int(self.s[self.i + 2 : self.i + 2 + n], 16)))
                    self.i += 2 + n
                else:
                    raise LogqlParseError(f"unknown escape \\{nxt}")
                continue
            out_chars.append(c)
            self.i += 1
        raise LogqlParseError("unterminated string")

    def matcher(self) -> Matcher:
        name = self.ident()
        op = self.op()
        value = self.string()
        if op in ("=~", "!~"):
            try:
                re.compile(value)
            except re.error as e:
                raise LogqlParseError(f"invalid regexp {value!r}: {e}") from None
        return Matcher(name, op, value)

    def at_end(self) -> bool:
        self.ws()
        return self.i >= len(self.s)


def parse_logql(text: str) -> ParsedQuery:
    """Parse the subset of LogQL the bot uses, or raise ``LogqlParseError``."""
    lx = _Lexer(text)
    lx.expect("{")
    selector = [lx.matcher()]
    while lx.peek(","):
        lx.expect(",")
        selector.append(lx.matcher())
    lx.expect("}")
    if all(m.matches({}) for m in selector):
        raise LogqlParseError(
            "queries require at least one regexp or equality matcher that does not have an empty-compatible value"
        )
    stages: list[Matcher | str] = []
    while not lx.at_end():
        lx.expect("|")
        if lx.peek("json"):
            lx.expect("json")
            stages.append("json")
        else:
            stages.append(lx.matcher())
    return ParsedQuery(tuple(selector), tuple(stages))


def _flatten(obj: Mapping[str, Any], prefix: str, out: dict[str, str]) -> None:
    for k, v in obj.items():
        key = re.sub(r"[^A-Za-z0-9_]", "_", f"{prefix}{k}")
        if isinstance(v, dict):
            _flatten(v, key + "_", out)
        elif isinstance(v, list) or v is None:
            continue
        elif isinstance(v, bool):
            out[key] = "true" if v else "false"
        else:
            out[key] = str(v)


def _json_labels(line: str, existing: Mapping[str, str]) -> dict[str, str]:
    try:
        obj = json.loads(line)
    except ValueError:
        return {"__error__": "JSONParserErr"}
    if not isinstance(obj, dict):
        return {"__error__": "JSONParserErr"}
    flat: dict[str, str] = {}
    _flatten(obj, "", flat)
    return {(f"{k}_extracted" if k in existing else k): v for k, v in flat.items()}


def evaluate(q: ParsedQuery, entry: LokiEntry) -> dict[str, str] | None:
    """The parsed labels the stages added when ``entry`` matches, else None."""
    if not all(m.matches(entry.labels) for m in q.selector):
        return None
    labels = dict(entry.labels) | dict(entry.structured_metadata)
    parsed: dict[str, str] = {}
    for st in q.stages:
        if st == "json":
            extra = _json_labels(entry.line, labels)
            parsed.update(extra)
            labels.update(extra)
        elif isinstance(st, Matcher) and not st.matches(labels):
            return None
    return parsed


# ---------------------------------------------------------------- the server


class LokiStandIn(StandIn):
    """Loki's ``query_range`` over ``entries`` (see the module docstring)."""

    name = "loki stand-in"

    def __init__(
        self,
        entries: Iterable[LokiEntry] = (),
        *,
        tenant: str | None = None,
        delay_s: float = 0.0,
        max_entries_limit: int = 5000,
    ) -> None:
        super().__init__(tenant=tenant, delay_s=delay_s)
        self.entries: list[LokiEntry] = list(entries)
        self.max_entries_limit = max_entries_limit

    async def __aenter__(self) -> LokiStandIn:
        await self.start()
        return self

    def push(
        self,
        labels: Mapping[str, str],
        line: str | Mapping[str, Any],
        ts: datetime | int,
        structured_metadata: Mapping[str, str] | None = None,
    ) -> LokiEntry:
        """Store one entry; a Mapping line is JSON-encoded."""
        text = line if isinstance(line, str) else json.dumps(line, separators=(",", ":"))
        e = LokiEntry(to_ns(ts), dict(labels), text, dict(structured_metadata or {}))
        self.entries.append(e)
        return e

    def push_event(
        self, service: str, ts: datetime | int, *, env: str = "prod", level: str = "info", **fields: Any
    ) -> LokiEntry:
        """Store a platform log line (platform.md): labels service/env/level, JSON line
        with ``ts``, ``level``, ``msg`` and ``fields``."""
        ts_ns = to_ns(ts)
        line = {"ts": to_rfc3339_nano(ts_ns), "level": level, "msg": fields.pop("msg", ""), **fields}
        return self.push({"service": service, "env": env, "level": level}, line, ts_ns)

    def write_logcli_jsonl(self, path: Path, *, labels: bool = True) -> Path:
        """Write the entries as ``logcli query --output=jsonl`` would (``labels=False``:
        as with ``--no-labels``)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding="utf-8") as f:
            for e in sorted(self.entries, key=lambda e: e.ts_ns):
                rec: dict[str, Any] = {}
                if labels:
                    rec["labels"] = dict(e.labels)
                rec["line"] = e.line
                rec["timestamp"] = to_rfc3339_nano(e.ts_ns)
                f.write(json.dumps(rec) + "\n")
        return path

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/loki/api/v1/query_range", self._query_range)]

    async def _query_range(self, request: web.Request) -> web.Response:
        qs = request.query
        try:
            parsed = parse_logql(qs.get("query", ""))
        except LogqlParseError as err:
            return web.Response(status=400, text=f"parse error : {err}")
        try:
            limit = int(qs.get("limit", "100"))
            start = int(qs["start"]) if "start" in qs else to_ns(datetime.now(UTC) - timedelta(hours=1))
            end = int(qs["end"]) if "end" in qs else to_ns(datetime.now(UTC))
        except ValueError as err:
            return web.Response(status=400, text=f"invalid parameter: {err}")
        direction = qs.get("direction", "backward")
        if direction not in ("forward", "backward") or limit <= 0:
            return web.Response(status=400, text="invalid direction or limit")
        if limit > self.max_entries_limit:
            return web.Response(
                status=400,
                text="max entries limit per query exceeded, limit > max_entries_limit_per_query "
                f"({limit} > {self.max_entries_limit})",
            )
        if self.tenant and self.tenant_of(request) != self.tenant:
            matched: list[tuple[LokiEntry, dict[str, str]]] = []
        else:
            matched = []
            for e in self.entries:
                if start <= e.ts_ns < end:
                    p = evaluate(parsed, e)
                    if p is not None:
                        matched.append((e, p))
        matched.sort(key=lambda m: m[0].ts_ns, reverse=direction == "backward")
        matched = matched[:limit]
        categorize = "categorize-labels" in request.headers.get("X-Loki-Response-Encoding-Flags", "")
        streams: dict[tuple[tuple[str, str], ...], dict[str, Any]] = {}
        for e, p in matched:
            if categorize:
                labels = dict(e.labels)
                value: list[Any] = [str(e.ts_ns), e.line]
                meta: dict[str, Any] = {}
                if e.structured_metadata:
                    meta["structuredMetadata"] = dict(e.structured_metadata)
                if p:
                    meta["parsed"] = p
                if meta:
                    value.append(meta)
            else:
                labels = dict(e.labels) | dict(e.structured_metadata) | p
                value = [str(e.ts_ns), e.line]
            key = tuple(sorted(labels.items()))
            streams.setdefault(key, {"stream": labels, "values": []})["values"].append(value)
        data: dict[str, Any] = {
            "resultType": "streams",
            "result": list(streams.values()),
            "stats": {"summary": {"totalEntriesReturned": len(matched)}},
        }
        if categorize:
            data["encodingFlags"] = ["categorize-labels"]
        return web.json_response({"status": "success", "data": data})


@pytest.fixture
async def loki_standin() -> AsyncIterator[LokiStandIn]:
    """A started ``LokiStandIn`` with no data and no tenant."""
    async with LokiStandIn() as s:
        yield s
