"""TempoTraceSource against the Tempo stand-in (a real HTTP server on 127.0.0.1)."""

from __future__ import annotations

import json
import math
from datetime import timedelta
from pathlib import Path
from typing import Literal

import httpx
import pytest

from bot.diagnosis.model import Span, Window
from bot.errors import BadInput, SourceError, SourceUnavailable
from bot.sources.tempo import TempoTraceSource
from tests.constants import T0, TRACE
from tests.standins import dead_url
from tests.standins.tempo import TempoStandIn

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "tempo"
# this file's own window, not tests.constants.WINDOW: its ends are not whole seconds (start rounds down, end up)
WINDOW = Window(T0 - timedelta(hours=1, microseconds=500), T0 + timedelta(hours=1, microseconds=500))
MISSING = "ffffffffffffffffffffffffffffffff"
SPANS = [
    Span(TRACE, "b7ad6b7169203331", None, "gpuaas-api", "POST /v1/app-instances/{id}/start", "ok",
         T0, T0 + timedelta(milliseconds=5), {"correlation_id": "corr-123", "http.status_code": 202}),
    Span(TRACE, "00f067aa0ba902b7", "b7ad6b7169203331", "gpuaas-billing-worker", "billing.handle_usage",
         "error", T0 + timedelta(seconds=1), T0 + timedelta(seconds=2), {"correlation_id": "corr-123"}),
]  # fmt: skip
Api = Literal["v1", "v2"]


def source(url: str, api: Api = "v2", **kw: object) -> TempoTraceSource:
    args: dict[str, object] = {"tenant": None, "timeout_s": 2.0}
    args.update(kw)
    return TempoTraceSource(url, api=api, **args)  # type: ignore[arg-type]


@pytest.mark.parametrize("api", ["v1", "v2"])
@pytest.mark.parametrize("encoding", ["base64", "hex"])
async def test_found_trace(api: Api, encoding: Literal["base64", "hex"]) -> None:
    async with (
        TempoStandIn([SPANS], tenant="team-a", id_encoding=encoding) as tempo,
        source(tempo.url, api, tenant="team-a") as src,
    ):
        got = await src.get_trace(TRACE, WINDOW)
    assert got.items == SPANS
    req = tempo.requests[0]
    assert req.header("X-Scope-OrgID") == "team-a"
    assert got.call.source == "tempo" and got.call.kind == "trace" and got.call.via == tempo.url
    assert got.call.params["spans"] == 2
    if api == "v2":
        assert req.path == f"/api/v2/traces/{TRACE}"
        # unix seconds, widened to whole seconds around the window
        start, end = math.floor(WINDOW.start.timestamp()), math.ceil(WINDOW.end.timestamp())
        assert (start, end) == (1767221999, 1767229201)
        assert req.params == {"start": str(start), "end": str(end)}
        assert got.call.request == f"/api/v2/traces/{TRACE}?start={start}&end={end}"
    else:
        assert req.path == f"/api/traces/{TRACE}"
        assert req.params == {}
        assert got.call.request == f"/api/traces/{TRACE}"


async def test_v1_not_found_is_404_with_empty_body_and_no_spans(tempo_standin: TempoStandIn) -> None:
    async with source(tempo_standin.url, "v1") as src:
        got = await src.get_trace(MISSING, WINDOW)
    assert got.items == []
    assert got.call.params["spans"] == 0


async def test_v2_not_found_is_empty_trace_and_no_spans(tempo_standin: TempoStandIn) -> None:
    tempo_standin.add_trace(SPANS)
    async with source(tempo_standin.url, "v2") as src:
        got = await src.get_trace(MISSING, WINDOW)
    assert got.items == []
    assert tempo_standin.requests[0].path == f"/api/v2/traces/{MISSING}"


FIXTURES = ["v1_batches_base64.json", "v2_partial_base64.json", "grafana_hex_intenums.json", "tempo_cli_base64.json"]


@pytest.mark.parametrize("api", ["v1", "v2"])
@pytest.mark.parametrize("fixture", FIXTURES)
async def test_either_shape_from_either_endpoint(tempo_standin: TempoStandIn, api: Api, fixture: str) -> None:
    doc = json.loads((FIX / fixture).read_text())
    tempo_standin.add_document(TRACE, doc)
    async with source(tempo_standin.url, api) as src:
        got = await src.get_trace(TRACE, WINDOW)
    assert got.items, fixture
    assert all(len(s.span_id) == 16 and len(s.trace_id) == 32 for s in got.items)


async def test_empty_resource_spans_is_no_trace(tempo_standin: TempoStandIn) -> None:
    tempo_standin.add_document(TRACE, {"trace": {"resourceSpans": []}, "metrics": {}})
    async with source(tempo_standin.url) as src:
        assert (await src.get_trace(TRACE, WINDOW)).items == []


@pytest.mark.parametrize(
    "bad", ["0AF7651916CD43DD8448EB211C80319C", "abc", TRACE + "0", "g" * 32, "", "../../etc/passwd" + "0" * 16]
)
async def test_bad_trace_ids_are_bad_input_and_send_nothing(tempo_standin: TempoStandIn, bad: str) -> None:
    async with source(tempo_standin.url) as src:
        with pytest.raises(BadInput, match="32 lowercase hex"):
            await src.get_trace(bad, WINDOW)
    assert tempo_standin.requests == []


@pytest.mark.parametrize("status", [500, 422, 503])
async def test_error_statuses_are_source_errors(tempo_standin: TempoStandIn, status: int) -> None:
    tempo_standin.fail(status, "trace too large" if status == 422 else "internal error")
    async with source(tempo_standin.url) as src:
        with pytest.raises(SourceError, match=f"HTTP {status}: ") as ei:
            await src.get_trace(TRACE, WINDOW)
    assert ei.value.source == "tempo"


async def test_missing_org_id_is_an_error() -> None:
    async with TempoStandIn([SPANS], tenant="team-a") as tempo, source(tempo.url) as src:
        with pytest.raises(SourceError, match="HTTP 401: no org id"):
            await src.get_trace(TRACE, WINDOW)


async def test_malformed_json_is_an_error(tempo_standin: TempoStandIn) -> None:
    tempo_standin.serve_malformed()
    async with source(tempo_standin.url) as src:
        with pytest.raises(SourceError, match="malformed JSON"):
            await src.get_trace(TRACE, WINDOW)


async def test_wrong_shape_is_an_error(tempo_standin: TempoStandIn) -> None:
    tempo_standin.add_document(TRACE, {"traces": []})
    async with source(tempo_standin.url) as src:
        with pytest.raises(SourceError, match="unexpected trace shape"):
            await src.get_trace(TRACE, WINDOW)


async def test_empty_200_body_is_an_error(tempo_standin: TempoStandIn) -> None:
    tempo_standin.respond(200, "")
    async with source(tempo_standin.url) as src:
        with pytest.raises(SourceError):
            await src.get_trace(TRACE, WINDOW)


async def test_connection_closed_is_unavailable(tempo_standin: TempoStandIn) -> None:
    tempo_standin.close_connections()
    async with source(tempo_standin.url) as src:
        with pytest.raises(SourceUnavailable):
            await src.get_trace(TRACE, WINDOW)


async def test_connection_refused_is_unavailable() -> None:
    async with source(dead_url()) as src:
        with pytest.raises(SourceUnavailable, match="cannot reach") as ei:
            await src.get_trace(TRACE, WINDOW)
    assert ei.value.source == "tempo"


async def test_slow_answer_times_out_as_unavailable(tempo_standin: TempoStandIn) -> None:
    tempo_standin.add_trace(SPANS)
    tempo_standin.delay_s = 5.0
    async with source(tempo_standin.url, timeout_s=0.2) as src:
        with pytest.raises(SourceUnavailable, match=r"within 0\.2s"):
            await src.get_trace(TRACE, WINDOW)


async def test_unexpected_exceptions_become_source_errors() -> None:
    def boom(request: httpx.Request) -> httpx.Response:
        raise KeyError("kaboom")

    async with httpx.AsyncClient(transport=httpx.MockTransport(boom)) as client:
        src = TempoTraceSource("http://tempo", client=client)
        with pytest.raises(SourceError, match="KeyError"):
            await src.get_trace(TRACE, WINDOW)
