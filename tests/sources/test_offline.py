"""OfflineEvidence: a folder of logcli jsonl and Tempo JSON answers like the HTTP sources."""

from __future__ import annotations

import json
import logging
import shutil
from datetime import timedelta
from pathlib import Path

import pytest

from bot.diagnosis.model import Span, Window
from bot.errors import BadInput, SourceUnavailable
from bot.sources.logql import LogQuery, by_app_instance_id, by_correlation_id
from bot.sources.loki import LokiLogSource
from bot.sources.offline import OfflineEvidence, parse_rfc3339_ns
from bot.sources.otlp import datetime_to_ns
from bot.sources.tempo import TempoTraceSource
from tests.constants import T0, TRACE, WINDOW
from tests.standins.loki import LokiStandIn, to_rfc3339_nano
from tests.standins.tempo import TempoStandIn

FIX = Path(__file__).resolve().parents[1] / "fixtures"
TRACE_A = TRACE
TRACE_B = "00000000000000000000000000c0ffee"
EVIL = 'c1"} | line_format "x" | correlation_id=~".+'


def fill_loki(loki: LokiStandIn) -> None:
    """A small incident: two correlation ids, shared timestamps, nanosecond stamps,
    an entry outside the window, a service outside the selector, a non-JSON line."""
    ns = datetime_to_ns(T0)
    loki.push_event("gpuaas-api", ns, event="app.lifecycle.requested", correlation_id="c1",
                    app_instance_id="ai-1", action="start", trace_id=TRACE_A)  # fmt: skip
    loki.push_event("gpuaas-app-runtime-worker", ns + 123_456_789, event="app.lifecycle.started",
                    correlation_id="c1", app_instance_id="ai-1", components=["gpu", "cp"])  # fmt: skip
    for i in range(3):  # same timestamp, different services and lines
        loki.push_event("gpuaas-app-runtime-worker", ns + 10**9, event="metering.emitted",
                        correlation_id="c1", app_instance_id="ai-1", quantity=3600 + i)  # fmt: skip
        loki.push_event("gpuaas-billing-worker", ns + 10**9, event="billing.usage_recorded",
                        correlation_id="c1", app_instance_id="ai-1", n=i)  # fmt: skip
    loki.push_event("gpuaas-billing-worker", ns + 2 * 10**9, level="error", event="billing.usage_rejected",
                    correlation_id="c2", app_instance_id="ai-2", error="no rate card")  # fmt: skip
    loki.push_event("gpuaas-webhook-worker", ns + 3 * 10**9, event="payment.webhook_failed",
                    correlation_id="c1", app_instance_id="ai-1")  # fmt: skip
    loki.push_event("gpuaas-api", datetime_to_ns(WINDOW.end), event="late", correlation_id="c1")
    loki.push_event("gpuaas-scheduler", ns, event="not-selected", correlation_id="c1")
    loki.push({"service": "gpuaas-api", "env": "prod", "level": "warn"}, "plain text c1", ns)


def trace_spans() -> list[list[Span]]:
    a = [
        Span(TRACE_A, "b7ad6b7169203331", None, "gpuaas-api", "POST /v1/app-instances/{id}/start", "ok",
             T0, T0 + timedelta(milliseconds=5), {"correlation_id": "c1"}),
        Span(TRACE_A, "00f067aa0ba902b7", "b7ad6b7169203331", "gpuaas-app-runtime-worker", "outbox.publish",
             "error", T0 + timedelta(seconds=1), T0 + timedelta(seconds=2), {"correlation_id": "c1"}),
        Span(TRACE_A, "5b8aa5a2d2c872e8", "00f067aa0ba902b7", "gpuaas-billing-worker", "billing.handle_usage",
             "unset", T0 + timedelta(seconds=2), T0 + timedelta(seconds=3), {"n": 2, "ok": True}),
    ]  # fmt: skip
    b = [
        Span(TRACE_B, "1111111111111111", None, "gpuaas-api", "POST /v1/app-instances/{id}/stop", "error",
             T0, T0 + timedelta(milliseconds=1), {"app_instance_id": "ai-2"}),
    ]  # fmt: skip
    return [a, b]


QUERIES = [
    by_correlation_id("c1"),
    by_correlation_id("c2"),
    by_app_instance_id("ai-1"),
    by_app_instance_id("ai-2"),
    by_correlation_id("nothing"),
    LogQuery("logs_by_correlation_id", ("api",), "correlation_id", EVIL),
]
WINDOWS = [WINDOW, Window(T0 + timedelta(seconds=1), T0 + timedelta(seconds=3))]


async def test_offline_folder_gives_the_same_events_and_spans_as_http(tmp_path: Path) -> None:
    async with LokiStandIn() as loki, TempoStandIn(trace_spans()) as tempo:
        fill_loki(loki)
        loki.write_logcli_jsonl(tmp_path / "logs" / "all.jsonl")
        tempo.write_trace_files(tmp_path / "traces", style="v1")
        ev = OfflineEvidence(tmp_path)
        async with LokiLogSource(loki.url, None, 2.0, 7, 1000) as http_logs:
            for q in QUERIES:
                for w in WINDOWS:
                    online = await http_logs.query(q, w)
                    offline = await ev.logs.query(q, w)
                    assert offline.items == online.items, (q.value, w)
            paged = await http_logs.query(by_correlation_id("c1"), WINDOW)
            assert paged.call.params["pages"] >= 2
        async with TempoTraceSource(tempo.url) as http_traces:
            for tid in (TRACE_A, TRACE_B, "ffffffffffffffffffffffffffffffff"):
                online_t = await http_traces.get_trace(tid, WINDOW)
                offline_t = await ev.traces.get_trace(tid, WINDOW)
                assert offline_t.items == online_t.items, tid
    c1 = await ev.logs.query(by_correlation_id("c1"), WINDOW)
    assert len(c1.items) == 9  # api, started, 3 metering, 3 usage, webhook
    assert c1.items[1].ts == T0 + timedelta(microseconds=123456)
    assert (await ev.traces.get_trace(TRACE_A, WINDOW)).items == trace_spans()[0]


async def test_logcli_fixture_without_labels_and_with_offsets(tmp_path: Path) -> None:
    (tmp_path / "logs").mkdir()
    shutil.copy(FIX / "loki" / "logcli.jsonl", tmp_path / "logs" / "export.jsonl")
    ev = OfflineEvidence(tmp_path)
    got = await ev.logs.query(by_correlation_id("corr-123"), WINDOW)
    assert [(e.ts, e.service, e.event) for e in got.items] == [
        (T0, "gpuaas-api", "app.lifecycle.requested"),
        (T0, "gpuaas-billing-worker", "billing.usage_recorded"),  # +01:00 offset
        (T0 + timedelta(seconds=1, microseconds=123456), "gpuaas-app-runtime-worker", "metering.emitted"),
    ]
    assert got.items[2].labels == {}  # --no-labels: service came from the line
    assert got.items[0].labels == {"env": "prod", "level": "info", "service": "gpuaas-api"}
    assert got.call.params["skipped_lines"] == 1
    assert got.call.request == by_correlation_id("corr-123").logql
    assert got.call.via == f"offline:{tmp_path}"
    assert got.call.source == "loki" and got.call.kind == "logql"


async def test_injection_value_matches_nothing_offline(tmp_path: Path) -> None:
    async with LokiStandIn() as loki:
        fill_loki(loki)
        loki.write_logcli_jsonl(tmp_path / "logs" / "a.jsonl")
    ev = OfflineEvidence(tmp_path)
    q = LogQuery("logs_by_correlation_id", ("api",), "correlation_id", EVIL)
    assert (await ev.logs.query(q, WINDOW)).items == []
    assert len((await ev.logs.query(by_correlation_id("c1"), WINDOW)).items) == 9


async def test_window_is_half_open(tmp_path: Path) -> None:
    async with LokiStandIn() as loki:
        fill_loki(loki)
        loki.write_logcli_jsonl(tmp_path / "logs" / "a.jsonl")
    ev = OfflineEvidence(tmp_path)
    got = await ev.logs.query(by_correlation_id("c1"), Window(T0 + timedelta(seconds=1), T0 + timedelta(seconds=3)))
    assert {e.ts for e in got.items} == {T0 + timedelta(seconds=1)}
    assert len(got.items) == 6


async def test_traces_are_found_by_the_ids_inside_any_shape(tmp_path: Path) -> None:
    (tmp_path / "traces").mkdir()
    shutil.copy(FIX / "tempo" / "grafana_hex_intenums.json", tmp_path / "traces" / "download.json")
    shutil.copy(FIX / "tempo" / "v2_partial_base64.json", tmp_path / "traces" / "saved-v2.json")
    shutil.copy(FIX / "tempo" / "tempo_cli_base64.json", tmp_path / "traces" / "cli.json")
    ev = OfflineEvidence(tmp_path)
    got = await ev.traces.get_trace(TRACE_A, WINDOW)
    # two files hold spans of TRACE_A; a span id repeated across files is kept once
    assert sorted(s.name for s in got.items) == ["payment.ack", "payment.webhook"]
    assert got.call.request == str(tmp_path / "traces" / "download.json")
    cli = await ev.traces.get_trace(TRACE_B, WINDOW)
    assert [s.name for s in cli.items] == ["POST /v1/app-instances/{id}/stop"]
    assert cli.call.via == f"offline:{tmp_path}" and cli.call.source == "tempo"
    assert (await ev.traces.get_trace("ffffffffffffffffffffffffffffffff", WINDOW)).items == []
    with pytest.raises(BadInput):
        await ev.traces.get_trace("NOT-A-TRACE", WINDOW)


async def test_malformed_files_are_skipped_counted_and_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "logs").mkdir()
    (tmp_path / "traces").mkdir()
    good = {"labels": {"service": "gpuaas-api"}, "line": json.dumps({"event": "e", "correlation_id": "c1"}),
            "timestamp": "2026-01-01T00:00:00Z"}  # fmt: skip
    (tmp_path / "logs" / "good.jsonl").write_text(json.dumps(good) + "\n" + '{"line": 1}\n')
    (tmp_path / "logs" / "binary.jsonl").write_bytes(b"\xff\xfe\x00garbage")
    (tmp_path / "traces" / "broken.json").write_text('{"batches": [')
    (tmp_path / "traces" / "wrong.json").write_text('{"spans": []}')
    shutil.copy(FIX / "tempo" / "v1_batches_base64.json", tmp_path / "traces" / "ok.json")
    ev = OfflineEvidence(tmp_path)
    with caplog.at_level(logging.WARNING, logger="bot.sources.offline"):
        logs = await ev.logs.query(by_correlation_id("c1"), WINDOW)
        traces = await ev.traces.get_trace(TRACE_A, WINDOW)
    assert len(logs.items) == 1
    assert logs.call.params["skipped_files"] == 1 and logs.call.params["skipped_lines"] == 1
    assert len(traces.items) == 3
    assert traces.call.params["skipped_files"] == 2
    logged = caplog.text
    assert "binary.jsonl" in logged and "broken.json" in logged and "wrong.json" in logged


async def test_missing_folder_is_unavailable_naming_the_path(tmp_path: Path) -> None:
    ev = OfflineEvidence(tmp_path / "nope")
    with pytest.raises(SourceUnavailable, match="nope") as ei:
        await ev.logs.query(by_correlation_id("c1"), WINDOW)
    assert ei.value.source == "loki"
    with pytest.raises(SourceUnavailable, match="nope") as et:
        await ev.traces.get_trace(TRACE_A, WINDOW)
    assert et.value.source == "tempo"


async def test_missing_subfolder_is_unavailable_for_that_source_only(tmp_path: Path) -> None:
    (tmp_path / "logs").mkdir()
    ev = OfflineEvidence(tmp_path)
    assert (await ev.logs.query(by_correlation_id("c1"), WINDOW)).items == []
    with pytest.raises(SourceUnavailable, match="traces/"):
        await ev.traces.get_trace(TRACE_A, WINDOW)


async def test_folder_is_indexed_once(tmp_path: Path) -> None:
    async with LokiStandIn() as loki, TempoStandIn(trace_spans()) as tempo:
        fill_loki(loki)
        loki.write_logcli_jsonl(tmp_path / "logs" / "a.jsonl")
        tempo.write_trace_files(tmp_path / "traces", style="tempo-cli", id_encoding="hex")
    ev = OfflineEvidence(tmp_path)
    first = await ev.logs.query(by_correlation_id("c1"), WINDOW)
    first_t = await ev.traces.get_trace(TRACE_A, WINDOW)
    shutil.rmtree(tmp_path / "logs")
    shutil.rmtree(tmp_path / "traces")
    assert (await ev.logs.query(by_correlation_id("c1"), WINDOW)).items == first.items
    assert (await ev.logs.query(by_app_instance_id("ai-1"), WINDOW)).items  # another field, same index
    assert (await ev.traces.get_trace(TRACE_A, WINDOW)).items == first_t.items
    ev.refresh()
    with pytest.raises(SourceUnavailable):
        await ev.logs.query(by_correlation_id("c1"), WINDOW)


async def test_prepare_indexes_the_folder_before_the_first_query(tmp_path: Path,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    async with LokiStandIn() as loki, TempoStandIn(trace_spans()) as tempo:
        fill_loki(loki)
        loki.write_logcli_jsonl(tmp_path / "logs" / "a.jsonl")
        tempo.write_trace_files(tmp_path / "traces", style="tempo-cli", id_encoding="hex")
    ev = OfflineEvidence(tmp_path)
    await ev.prepare()  # as recon serve does before it takes requests
    shutil.rmtree(tmp_path / "logs")
    shutil.rmtree(tmp_path / "traces")
    assert (await ev.logs.query(by_correlation_id("c1"), WINDOW)).items  # read from the index made at start
    assert (await ev.traces.get_trace(TRACE_A, WINDOW)).items
    with caplog.at_level("WARNING", logger="bot.sources.offline"):
        await OfflineEvidence(tmp_path / "nope").prepare()  # says so, does not stop the start
    assert "not indexed" in caplog.text and "nope" in caplog.text


def test_label_is_the_folder(tmp_path: Path) -> None:
    ev = OfflineEvidence(tmp_path)
    assert str(tmp_path) in ev.logs.label and str(tmp_path) in ev.traces.label


@pytest.mark.parametrize(
    ("text", "ns"),
    [
        ("2026-01-01T00:00:00Z", datetime_to_ns(T0)),
        ("2026-01-01T00:00:00.000000001Z", datetime_to_ns(T0) + 1),
        ("2026-01-01T00:00:00.5Z", datetime_to_ns(T0) + 500_000_000),
        ("2026-01-01T02:00:00.25+02:00", datetime_to_ns(T0) + 250_000_000),
    ],
)
def test_rfc3339_nano(text: str, ns: int) -> None:
    assert parse_rfc3339_ns(text) == ns
    assert parse_rfc3339_ns(to_rfc3339_nano(ns)) == ns


@pytest.mark.parametrize("bad", ["2026-01-01", "yesterday", "2026-01-01T00:00:00.1234567890Z", ""])
def test_rfc3339_rejects(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_rfc3339_ns(bad)
