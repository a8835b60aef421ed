"""Traces from Grafana Tempo over HTTP: trace by id (protocols.md §5).

* ``api="v2"`` (default): ``GET /api/v2/traces/<id>?start=&end=`` (unix seconds),
  answering ``{"trace": {"resourceSpans": […]}, …}``; 200 with an empty ``trace``
  when the trace is not found.
* ``api="v1"``: ``GET /api/traces/<id>``, answering ``{"batches": […]}``; 404 with an
  empty body when not found.

Either shape is accepted from either endpoint (``bot.sources.otlp``). A 404 or no
spans is "no trace": ``Fetched([], call)``. Other error statuses and unparsable bodies
are ``SourceError``; unreachable or timed out is ``SourceUnavailable``. A trace id
that is not 32 lowercase hex characters is ``BadInput``.
"""

from __future__ import annotations

import logging
import math
import re
import time
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import urlencode

import httpx

from bot.diagnosis.model import Span, Window
from bot.errors import BadInput, SourceError, SourceFailure, SourceUnavailable
from bot.sources import jsonload
from bot.sources.http import HttpSource
from bot.sources.otlp import parse_trace_json
from bot.sources.otlp_typed import parse_trace_bytes
from bot.sources.protocols import Fetched, SourceCall

__all__ = ["TempoTraceSource", "validate_trace_id"]

log = logging.getLogger(__name__)

SOURCE = "tempo"
ERROR_BODY_CHARS = 200
_TRACE_ID_RE = re.compile(r"[0-9a-f]{32}")


def validate_trace_id(trace_id: str) -> str:
    """The id itself if it is 32 lowercase hex characters; ``BadInput`` otherwise."""
    if not isinstance(trace_id, str) or not _TRACE_ID_RE.fullmatch(trace_id):
        raise BadInput(f"trace id {str(trace_id)[:64]!r} is not 32 lowercase hex characters")
    return trace_id


class TempoTraceSource(HttpSource):
    """A ``TraceSource`` over Tempo's HTTP API."""

    name = "tempo"

    def __init__(
        self,
        base_url: str,
        tenant: str | None = None,
        timeout_s: float = 10.0,
        client: httpx.AsyncClient | None = None,
        api: Literal["v1", "v2"] = "v2",
        *,
        user: str | None = None,
        password: str | None = None,
        bearer_token: str | None = None,
    ) -> None:
        if api not in ("v1", "v2"):
            raise ValueError(f"api must be 'v1' or 'v2', not {api!r}")
        super().__init__(base_url, tenant, timeout_s, client, user=user, password=password,
                         bearer_token=bearer_token)
        self.api = api

    def request_path(self, trace_id: str, window: Window) -> str:
        """Path and query of the request for this trace id and window."""
        if self.api == "v1":
            return f"/api/traces/{trace_id}"
        start = math.floor(window.start.timestamp())
        end = math.ceil(window.end.timestamp())
        return f"/api/v2/traces/{trace_id}?" + urlencode({"start": start, "end": end})

    async def get_trace(self, trace_id: str, window: Window) -> Fetched[Span]:
        """The trace's spans; no items when Tempo does not have it."""
        validate_trace_id(trace_id)
        path = self.request_path(trace_id, window)
        started_at = datetime.now(UTC)
        t0 = time.perf_counter()
        try:
            spans = await self._fetch(path)
        except SourceFailure:
            raise
        except Exception as e:  # the Protocol promises SourceFailure only
            log.exception("unexpected error fetching a trace from tempo")
            raise SourceError(SOURCE, f"unexpected {type(e).__name__}: {self.scrub(str(e))}") from e
        call = SourceCall(
            source=SOURCE,
            kind="trace",
            request=path,
            params={"trace_id": trace_id, "api": self.api, "spans": len(spans)},
            window=window,
            started_at=started_at,
            duration_ms=(time.perf_counter() - t0) * 1000.0,
            via=self.base_url,
        )
        return Fetched(spans, call)

    async def _fetch(self, path: str) -> list[Span]:
        headers = self._headers()
        try:
            resp = await self._client.get(self.url(path), headers=headers, timeout=self.timeout_s)
        except httpx.TimeoutException as e:
            raise SourceUnavailable(
                SOURCE, f"no answer from {self.base_url} within {self.timeout_s}s ({type(e).__name__})"
            ) from e
        except (httpx.TransportError, httpx.InvalidURL) as e:
            raise SourceUnavailable(SOURCE, f"cannot reach {self.base_url}: {self.scrub(str(e)) or type(e).__name__}"
                                    ) from e
        if resp.status_code == 404:
            return []
        if not resp.is_success:
            body = self.scrub(resp.text.strip())[:ERROR_BODY_CHARS]
            raise SourceError(SOURCE, f"HTTP {resp.status_code}: {body}")
        fast = parse_trace_bytes(resp.content)
        if fast is not None:
            return fast
        try:
            doc: Any = jsonload.loads(resp.content)
        except ValueError as e:
            raise SourceError(SOURCE, f"malformed JSON for {path}: {e}") from e
        try:
            return parse_trace_json(doc)
        except ValueError as e:
            raise SourceError(SOURCE, f"unexpected trace shape for {path}: {e}") from e
