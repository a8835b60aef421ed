"""LokiLogSource against the Loki stand-in (a real HTTP server on 127.0.0.1)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from bot.diagnosis.model import Window
from bot.errors import SourceError, SourceUnavailable
from bot.sources.logql import LogQuery, by_app_instance_id, by_correlation_id
from bot.sources.loki import LokiLogSource
from bot.sources.otlp import datetime_to_ns
from tests.constants import T0, WINDOW
from tests.standins import dead_url
from tests.standins.loki import LokiStandIn, parse_logql

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "loki"
Q = by_correlation_id("corr-123")


def source(url: str, **kw: object) -> LokiLogSource:
    args: dict[str, object] = {"tenant": None, "timeout_s": 2.0, "batch": 100, "max_entries": 1000}
    args.update(kw)
    return LokiLogSource(url, **args)  # type: ignore[arg-type]


async def test_sends_the_documented_request_and_parses_events() -> None:
    async with LokiStandIn(tenant="team-a") as loki:
        loki.push_event("gpuaas-api", T0, event="app.lifecycle.requested", correlation_id="corr-123")
        loki.push_event("gpuaas-billing-worker", T0 + timedelta(seconds=2), level="error",
                        event="billing.usage_rejected", correlation_id="corr-123", error="no card")  # fmt: skip
        loki.push_event("gpuaas-api", T0, event="app.lifecycle.requested", correlation_id="other")
        async with source(loki.url, tenant="team-a", batch=50) as src:
            got = await src.query(Q, WINDOW)
    req = loki.requests[0]
    assert req.path == "/loki/api/v1/query_range"
    assert req.params == {
        "query": Q.logql,
        "start": str(datetime_to_ns(WINDOW.start)),
        "end": str(datetime_to_ns(WINDOW.end)),
        "direction": "forward",
        "limit": "50",
    }
    assert req.header("X-Scope-OrgID") == "team-a"
    assert [e.event for e in got.items] == ["app.lifecycle.requested", "billing.usage_rejected"]
    first, second = got.items
    assert first.ts == T0 and first.service == "gpuaas-api"
    assert first.labels == {"service": "gpuaas-api", "env": "prod", "level": "info"}
    assert second.line["error"] == "no card" and second.correlation_id == "corr-123"
    call = got.call
    assert (call.source, call.kind, call.request, call.via) == ("loki", "logql", Q.logql, loki.url)
    assert call.params["pages"] == 1 and call.params["direction"] == "forward"
    assert call.params["limit"] == 50 and call.params["truncated"] is False
    assert call.window == WINDOW
    assert call.started_at is not None and call.started_at.tzinfo is not None
    assert call.duration_ms > 0


async def test_no_tenant_sends_no_org_header(loki_standin: LokiStandIn) -> None:
    async with source(loki_standin.url) as src:
        await src.query(Q, WINDOW)
    assert loki_standin.requests[0].header("X-Scope-OrgID") is None


async def test_pagination_across_pages_sharing_boundary_timestamps(loki_standin: LokiStandIn) -> None:
    # 14 entries; groups share a second, and three services share some timestamps
    seconds = [0, 1, 1, 1, 2, 2, 2, 3, 4, 4, 5, 5, 5, 6]
    services = ["gpuaas-api", "gpuaas-billing-worker", "gpuaas-app-runtime-worker"]
    for n, s in enumerate(seconds):
        loki_standin.push_event(services[n % 3], T0 + timedelta(seconds=s), event="e",
                                correlation_id="corr-123", n=n)  # fmt: skip
    async with source(loki_standin.url, batch=4) as src:
        got = await src.query(Q, WINDOW)
    assert sorted(e.line["n"] for e in got.items) == list(range(14))  # none lost, no dupes
    assert [e.ts for e in got.items] == sorted(e.ts for e in got.items)
    starts = [int(r.params["start"]) for r in loki_standin.requests]
    expected = [datetime_to_ns(WINDOW.start)] + [datetime_to_ns(T0 + timedelta(seconds=s)) for s in (1, 2, 3, 5, 6)]
    assert starts == expected
    assert got.call.params["pages"] == 6
    # ties are ordered by service, so every source gives the same order
    at_one = [e.service for e in got.items if e.ts == T0 + timedelta(seconds=1)]
    assert at_one == sorted(at_one)


async def test_full_batch_sharing_one_timestamp_is_an_error(loki_standin: LokiStandIn) -> None:
    for n in range(5):
        loki_standin.push_event("gpuaas-api", T0, event="e", correlation_id="corr-123", n=n)
    async with source(loki_standin.url, batch=3) as src:
        with pytest.raises(SourceError, match="share the timestamp") as ei:
            await src.query(Q, WINDOW)
    assert ei.value.source == "loki"
    assert len(loki_standin.requests) == 1


async def test_max_entries_truncates_and_says_so(loki_standin: LokiStandIn) -> None:
    for n in range(10):
        loki_standin.push_event("gpuaas-api", T0 + timedelta(seconds=n), event="e", correlation_id="corr-123", n=n)
    async with source(loki_standin.url, batch=3, max_entries=5) as src:
        got = await src.query(Q, WINDOW)
    assert [e.line["n"] for e in got.items] == [0, 1, 2, 3, 4]
    assert got.call.params["truncated"] is True
    assert got.call.params["pages"] == 2


async def test_exactly_max_entries_in_a_short_batch_is_not_truncated(loki_standin: LokiStandIn) -> None:
    # pages: [0 1 2] then [2 3]: the second is short, so all 4 entries were seen
    for n in range(4):
        loki_standin.push_event("gpuaas-api", T0 + timedelta(seconds=n), event="e", correlation_id="corr-123", n=n)
    async with source(loki_standin.url, batch=3, max_entries=4) as src:
        got = await src.query(Q, WINDOW)
    assert len(got.items) == 4
    assert got.call.params["truncated"] is False


async def test_window_is_half_open(loki_standin: LokiStandIn) -> None:
    w = Window(T0, T0 + timedelta(minutes=1))
    for n, ts in enumerate([T0 - timedelta(microseconds=1), T0, T0 + timedelta(seconds=59), w.end]):
        loki_standin.push_event("gpuaas-api", ts, event="e", correlation_id="corr-123", n=n)
    async with source(loki_standin.url) as src:
        got = await src.query(Q, w)
    assert [e.line["n"] for e in got.items] == [1, 2]


async def test_service_selector_is_applied(loki_standin: LokiStandIn) -> None:
    loki_standin.push_event("gpuaas-webhook-worker", T0, event="payment.webhook_failed", app_instance_id="ai-1")
    loki_standin.push_event("gpuaas-api", T0, event="app.lifecycle.requested", app_instance_id="ai-1")
    async with source(loki_standin.url) as src:
        got = await src.query(by_app_instance_id("ai-1"), WINDOW)
    assert [e.service for e in got.items] == ["gpuaas-api"]


async def test_plain_value_form_merges_parsed_labels_into_streams(loki_standin: LokiStandIn) -> None:
    loki_standin.push_event("gpuaas-api", T0, event="app.lifecycle.requested", correlation_id="corr-123")
    async with source(loki_standin.url, categorize_labels=False) as src:
        got = await src.query(Q, WINDOW)
    assert loki_standin.requests[0].header("X-Loki-Response-Encoding-Flags") is None
    (ev,) = got.items
    assert ev.event == "app.lifecycle.requested"
    assert ev.labels["correlation_id"] == "corr-123"  # Loki's stream carries parsed labels
    assert ev.labels["level_extracted"] == "info"


async def test_categorize_labels_fixture(loki_standin: LokiStandIn) -> None:
    loki_standin.respond(200, (FIX / "query_range_categorized.json").read_text())
    async with source(loki_standin.url) as src:
        got = await src.query(Q, WINDOW)
    assert loki_standin.requests[0].header("X-Loki-Response-Encoding-Flags") == "categorize-labels"
    assert [(e.service, e.event) for e in got.items] == [
        ("gpuaas-api", "app.lifecycle.requested"),  # no service label: from the line
        ("gpuaas-app-runtime-worker", "metering.emitted"),
        ("gpuaas-app-runtime-worker", "outbox.published"),
    ]
    assert got.items[1].labels == {"service": "gpuaas-app-runtime-worker", "env": "prod", "level": "info"}
    assert got.items[1].line["quantity"] == 3600


async def test_plain_fixture_skips_non_json_lines_and_sorts_streams(loki_standin: LokiStandIn) -> None:
    loki_standin.respond(200, (FIX / "query_range_plain.json").read_text())
    async with source(loki_standin.url) as src:
        got = await src.query(Q, WINDOW)
    assert [e.ts for e in got.items] == [T0, T0 + timedelta(seconds=1), T0 + timedelta(seconds=2, milliseconds=500)]
    assert got.call.params["skipped_lines"] == 1
    assert got.call.params["entries"] == 4


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_server_errors_are_source_errors_with_the_text_body(loki_standin: LokiStandIn, status: int) -> None:
    loki_standin.fail(status, f"upstream said {status}\n")
    async with source(loki_standin.url) as src:
        with pytest.raises(SourceError) as ei:
            await src.query(Q, WINDOW)
    assert ei.value.source == "loki"
    assert ei.value.reason == f"HTTP {status}: upstream said {status}"


async def test_long_error_bodies_are_cut_to_200_chars(loki_standin: LokiStandIn) -> None:
    loki_standin.fail(500, "x" * 5000)
    async with source(loki_standin.url) as src:
        with pytest.raises(SourceError) as ei:
            await src.query(Q, WINDOW)
    assert ei.value.reason == "HTTP 500: " + "x" * 200


async def test_missing_org_id_is_an_error() -> None:
    async with LokiStandIn(tenant="team-a") as loki, source(loki.url) as src:
        with pytest.raises(SourceError, match="HTTP 401: no org id"):
            await src.query(Q, WINDOW)


async def test_other_tenant_sees_nothing() -> None:
    async with LokiStandIn(tenant="team-a") as loki, source(loki.url, tenant="team-b") as src:
        loki.push_event("gpuaas-api", T0, event="e", correlation_id="corr-123")
        got = await src.query(Q, WINDOW)
    assert got.items == []


async def test_batch_above_the_server_limit_gives_its_400(loki_standin: LokiStandIn) -> None:
    async with source(loki_standin.url, batch=6000) as src:
        with pytest.raises(SourceError) as ei:
            await src.query(Q, WINDOW)
    assert ei.value.reason == (
        "HTTP 400: max entries limit per query exceeded, limit > max_entries_limit_per_query (6000 > 5000)"
    )


async def test_malformed_json_is_an_error(loki_standin: LokiStandIn) -> None:
    loki_standin.serve_malformed()
    async with source(loki_standin.url) as src:
        with pytest.raises(SourceError, match="malformed JSON"):
            await src.query(Q, WINDOW)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('{"status":"error","error":"boom"}', "status is 'error'"),
        ('{"status":"success","data":{}}', "no data.result"),
        ('{"status":"success","data":{"resultType":"matrix","result":[]}}', "matrix"),
        ("[]", "not a JSON object"),
        ('{"status":"success","data":{"result":[{"stream":{},"values":[["x","l"]]}]}}', "timestamp"),
        ('{"status":"success","data":{"result":[{"stream":{},"values":[[1]]}]}}', "malformed value"),
    ],
)
async def test_wrong_shapes_are_errors(loki_standin: LokiStandIn, body: str, message: str) -> None:
    loki_standin.respond(200, body)
    async with source(loki_standin.url) as src:
        with pytest.raises(SourceError, match=message):
            await src.query(Q, WINDOW)


async def test_connection_closed_is_unavailable(loki_standin: LokiStandIn) -> None:
    loki_standin.close_connections()
    async with source(loki_standin.url) as src:
        with pytest.raises(SourceUnavailable) as ei:
            await src.query(Q, WINDOW)
    assert ei.value.source == "loki"


async def test_connection_refused_is_unavailable() -> None:
    url = dead_url()
    async with source(url) as src:
        with pytest.raises(SourceUnavailable, match="cannot reach"):
            await src.query(Q, WINDOW)


async def test_unknown_host_is_unavailable() -> None:
    async with source("http://recon-no-such-host.invalid", timeout_s=1.0) as src:
        with pytest.raises(SourceUnavailable):
            await src.query(Q, WINDOW)


async def test_slow_answer_times_out_as_unavailable(loki_standin: LokiStandIn) -> None:
    loki_standin.delay_s = 5.0
    async with source(loki_standin.url, timeout_s=0.2) as src:
        with pytest.raises(SourceUnavailable, match=r"within 0\.2s"):
            await src.query(Q, WINDOW)


async def test_transient_failure_then_recovery(loki_standin: LokiStandIn) -> None:
    loki_standin.push_event("gpuaas-api", T0, event="e", correlation_id="corr-123")
    loki_standin.fail(503, "busy", times=1)
    async with source(loki_standin.url) as src:
        with pytest.raises(SourceError):
            await src.query(Q, WINDOW)
        got = await src.query(Q, WINDOW)
    assert len(got.items) == 1


async def test_unexpected_exceptions_become_source_errors() -> None:
    def boom(request: httpx.Request) -> httpx.Response:
        raise RuntimeError("kaboom")

    async with httpx.AsyncClient(transport=httpx.MockTransport(boom)) as client:
        src = LokiLogSource("http://loki", None, 1.0, 10, 10, client=client)
        with pytest.raises(SourceError, match="kaboom"):
            await src.query(Q, WINDOW)


async def test_logql_injection_is_sent_escaped_and_matches_nothing(loki_standin: LokiStandIn) -> None:
    evil = 'corr-123"} | line_format "x" | correlation_id=~".+'
    loki_standin.push_event("gpuaas-api", T0, event="e", correlation_id="corr-123")
    loki_standin.push_event("gpuaas-api", T0, event="e", correlation_id="other")
    q = LogQuery("logs_by_correlation_id", ("api",), "correlation_id", evil)
    async with source(loki_standin.url) as src:
        got = await src.query(q, WINDOW)
    assert got.items == []
    sent = loki_standin.requests[0].params["query"]
    assert sent == q.logql
    parsed = parse_logql(sent)
    assert len(parsed.stages) == 2  # json, one label filter: the value did not escape
    assert parsed.stages[1].value == evil  # type: ignore[union-attr]


async def test_passed_client_is_not_closed_but_own_client_is(loki_standin: LokiStandIn) -> None:
    async with httpx.AsyncClient() as client:
        src = source(loki_standin.url, client=client)
        await src.aclose()
        assert not client.is_closed
        await src.query(Q, WINDOW)  # still usable
    own = source(loki_standin.url)
    await own.aclose()
    assert own._client.is_closed


def test_fixture_files_are_valid_json() -> None:
    for p in FIX.glob("*.json"):
        assert json.loads(p.read_text())["status"] == "success"


# ------------------------------------------------------------ the stand-in's own contract


@pytest.mark.parametrize(
    "query",
    [
        '{service=~"gpuaas-api"} |= "boom"',
        '{service=~".*"} | json | correlation_id="c1"',
        '{service=~"gpuaas-api"} | json | correlation_id="c1',
        'sum(rate({service="gpuaas-api"}[5m]))',
        "",
    ],
)
async def test_standin_rejects_other_query_shapes_with_400_text(loki_standin: LokiStandIn, query: str) -> None:
    async with httpx.AsyncClient() as client:
        r = await client.get(loki_standin.url + "/loki/api/v1/query_range", params={"query": query})
    assert r.status_code == 400
    assert r.headers["content-type"].startswith("text/plain")
    assert r.text.startswith("parse error")


async def test_standin_defaults_to_backward_and_limit_100(loki_standin: LokiStandIn) -> None:
    now = datetime.now(UTC)
    for n in range(120):
        loki_standin.push_event("gpuaas-api", now - timedelta(seconds=n + 1), event="e", correlation_id="c1", n=n)
    async with httpx.AsyncClient() as client:
        r = await client.get(
            loki_standin.url + "/loki/api/v1/query_range", params={"query": by_correlation_id("c1").logql}
        )
    streams = r.json()["data"]["result"]
    assert len(streams) == 100  # without categorize-labels, parsed labels split the streams
    ns = [json.loads(v[1])["n"] for s in streams for v in s["values"]]
    assert ns == list(range(100))  # newest first
