"""A Tempo stand-in: trace by id, v1 and v2 (protocols.md §5).

* ``GET /api/traces/<id>``: ``{"batches": […]}``, or 404 with an empty body
* ``GET /api/v2/traces/<id>``: ``{"trace": {"resourceSpans": […]}, "metrics": {…}}``,
  or 200 ``{"trace": {}, "metrics": {…}}`` when not found

Ids in bodies are base64 by default (Tempo's jsonpb; ``id_encoding="hex"`` for
Grafana-style), enums are names. The id in the path is hex (leading zeros may be
left out); anything else is 400. ``add_document`` serves a hand-written body as-is on
both endpoints, for shape tests. Tenancy, delay and failure modes: ``StandIn``.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import pytest
from aiohttp import web

from bot.diagnosis.model import Span
from bot.sources.otlp import encode_trace_json
from tests.standins import StandIn

__all__ = ["TempoStandIn", "tempo_standin"]

_HEX_RE = re.compile(r"[0-9a-fA-F]{1,32}")


class TempoStandIn(StandIn):
    """Tempo's trace-by-id endpoints over in-memory traces."""

    name = "tempo stand-in"

    def __init__(
        self,
        traces: Iterable[Sequence[Span]] = (),
        *,
        tenant: str | None = None,
        delay_s: float = 0.0,
        id_encoding: Literal["base64", "hex"] = "base64",
    ) -> None:
        super().__init__(tenant=tenant, delay_s=delay_s)
        self.id_encoding: Literal["base64", "hex"] = id_encoding
        self.traces: dict[str, list[Span]] = {}
        self.documents: dict[str, Mapping[str, Any]] = {}
        for spans in traces:
            self.add_trace(spans)

    async def __aenter__(self) -> TempoStandIn:
        await self.start()
        return self

    def add_trace(self, spans: Iterable[Span]) -> None:
        """Store spans, grouped by their trace id."""
        for s in spans:
            self.traces.setdefault(s.trace_id, []).append(s)

    def add_document(self, trace_id: str, doc: Mapping[str, Any]) -> None:
        """Serve ``doc`` verbatim (on v1 and v2) for this trace id."""
        self.documents[trace_id.lower()] = doc

    def write_trace_files(
        self,
        folder: Path,
        style: Literal["v1", "v2", "tempo-cli"] = "v1",
        id_encoding: Literal["base64", "hex"] | None = None,
    ) -> list[Path]:
        """Write each stored trace to ``folder/<trace_id>.json`` as Tempo would answer."""
        folder.mkdir(parents=True, exist_ok=True)
        out: list[Path] = []
        for tid, spans in self.traces.items():
            p = folder / f"{tid}.json"
            p.write_text(json.dumps(encode_trace_json(spans, style, id_encoding or self.id_encoding)))
            out.append(p)
        return out

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/api/traces/{trace_id}", self._v1),
            web.get("/api/v2/traces/{trace_id}", self._v2),
        ]

    def _lookup(self, request: web.Request) -> tuple[str, Mapping[str, Any] | None] | web.Response:
        raw = request.match_info["trace_id"]
        if not _HEX_RE.fullmatch(raw):
            return web.Response(status=400, text=f"invalid trace id: {raw}")
        tid = raw.lower().rjust(32, "0")
        if self.tenant and self.tenant_of(request) != self.tenant:
            return tid, None
        if tid in self.documents:
            return tid, self.documents[tid]
        return tid, None

    async def _v1(self, request: web.Request) -> web.Response:
        found = self._lookup(request)
        if isinstance(found, web.Response):
            return found
        tid, doc = found
        if doc is not None:
            return web.json_response(doc)
        if tid not in self.traces or (self.tenant and self.tenant_of(request) != self.tenant):
            return web.Response(status=404, body=b"")
        return web.json_response(encode_trace_json(self.traces[tid], "v1", self.id_encoding))

    async def _v2(self, request: web.Request) -> web.Response:
        found = self._lookup(request)
        if isinstance(found, web.Response):
            return found
        tid, doc = found
        if doc is not None:
            return web.json_response(doc)
        metrics = {"inspectedBytes": "0"}
        if tid not in self.traces or (self.tenant and self.tenant_of(request) != self.tenant):
            return web.json_response({"trace": {}, "metrics": metrics})
        body = encode_trace_json(self.traces[tid], "v2", self.id_encoding)
        body["metrics"] = metrics
        return web.json_response(body)


@pytest.fixture
async def tempo_standin() -> AsyncIterator[TempoStandIn]:
    """A started ``TempoStandIn`` with no traces and no tenant."""
    async with TempoStandIn() as s:
        yield s
