"""Trace JSON parsing and writing (bot.sources.otlp), against hand-written documents."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.diagnosis.model import Span
from bot.sources.otlp import (
    datetime_to_ns,
    encode_trace_json,
    normalize_id,
    ns_to_datetime,
    parse_trace_json,
)
from tests.constants import T0, TRACE

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "tempo"


def load(name: str) -> Any:
    return json.loads((FIX / name).read_text())


def test_v1_batches_base64_ids_and_enum_names() -> None:
    spans = parse_trace_json(load("v1_batches_base64.json"))
    assert [s.span_id for s in spans] == ["b7ad6b7169203331", "00f067aa0ba902b7", "5b8aa5a2d2c872e8"]
    assert {s.trace_id for s in spans} == {TRACE}
    root, handle, post = spans
    assert root.parent_span_id is None
    assert handle.parent_span_id == "b7ad6b7169203331"
    assert post.parent_span_id == "00f067aa0ba902b7"
    assert (root.service, handle.service) == ("gpuaas-api", "gpuaas-billing-worker")
    assert (root.status, handle.status, post.status) == ("ok", "error", "unset")
    assert root.name == "POST /v1/app-instances/{id}/start"
    assert root.start == T0
    assert root.end == T0 + timedelta(milliseconds=250)
    assert root.start.tzinfo is not None


def test_any_value_attributes_flatten_to_python_values() -> None:
    spans = parse_trace_json(load("v1_batches_base64.json"))
    assert spans[0].attributes == {
        "correlation_id": "corr-123",
        "app_instance_id": "ai-1",
        "http.status_code": 202,
    }
    assert spans[1].attributes == {
        "correlation_id": "corr-123",
        "retry": True,
        "ratio": 0.5,
        "components": ["gpu", "control-plane"],
        "meta": {"attempt": 3},
    }
    assert spans[2].attributes == {}


def test_v2_trace_wrapper_with_partial_status() -> None:
    spans = parse_trace_json(load("v2_partial_base64.json"))
    assert len(spans) == 1
    assert spans[0].service == "gpuaas-app-runtime-worker"
    assert spans[0].name == "outbox.publish"
    assert spans[0].status == "error"


def test_grafana_hex_ids_int_enums_and_instrumentation_library_spans() -> None:
    spans = parse_trace_json(load("grafana_hex_intenums.json"))
    assert [(s.trace_id, s.span_id, s.parent_span_id) for s in spans] == [
        (TRACE, "b7ad6b7169203331", None),
        (TRACE, "00f067aa0ba902b7", "b7ad6b7169203331"),
    ]
    assert [s.status for s in spans] == ["error", "ok"]
    assert spans[0].service == "gpuaas-webhook-worker"
    # int nanoseconds, truncated to microseconds
    assert spans[0].end == T0 + timedelta(seconds=3, microseconds=123456)


def test_tempo_cli_resource_spans_with_leading_zero_trace_id() -> None:
    spans = parse_trace_json(load("tempo_cli_base64.json"))
    assert spans[0].trace_id == "00000000000000000000000000c0ffee"
    assert spans[0].status == "unset"


@pytest.mark.parametrize("doc", [{"trace": {}}, {"trace": None}, {"batches": []}, {"resourceSpans": []}, {}])
def test_empty_documents_have_no_spans(doc: Any) -> None:
    assert parse_trace_json(doc) == []


def test_empty_v2_fixture_has_no_spans() -> None:
    assert parse_trace_json(load("v2_not_found.json")) == []


def _one_span(**overrides: Any) -> dict[str, Any]:
    span: dict[str, Any] = {
        "traceId": "CvdlGRbNQ92ESOshHIAxnA==",
        "spanId": "t61rcWkgMzE=",
        "name": "x",
        "startTimeUnixNano": "1",
        "endTimeUnixNano": "2",
    }
    span.update(overrides)
    return {"resourceSpans": [{"resource": {}, "scopeSpans": [{"spans": [span]}]}]}


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ("not a trace", "JSON object"),
        ({"spans": []}, "none of"),
        ({"batches": {"x": 1}}, "must be a list"),
        (_one_span(traceId="zz"), "traceId"),
        (_one_span(spanId=None), "spanId"),
        (_one_span(startTimeUnixNano="soon"), "startTimeUnixNano"),
        (_one_span(status={"code": "STATUS_CODE_BROKEN"}), "status code"),
        (_one_span(status={"code": 7}), "status code"),
        (_one_span(attributes=[{"value": {"stringValue": "no key"}}]), "string key"),
    ],
)
def test_malformed_documents_raise_value_error_naming_the_problem(doc: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_trace_json(doc)


def test_missing_service_name_is_unknown_service() -> None:
    assert parse_trace_json(_one_span())[0].service == "unknown_service"


def test_status_code_as_digit_string() -> None:
    assert parse_trace_json(_one_span(status={"code": "2"}))[0].status == "error"


@pytest.mark.parametrize(
    ("value", "nbytes", "expected"),
    [
        ("CvdlGRbNQ92ESOshHIAxnA==", 16, TRACE),
        ("CvdlGRbNQ92ESOshHIAxnA", 16, TRACE),  # unpadded
        (TRACE.upper(), 16, TRACE),
        ("c0ffee", 16, "00000000000000000000000000c0ffee"),  # search-style stripped hex
        ("APBnqgupArc=", 8, "00f067aa0ba902b7"),
        ("00f067aa0ba902b7", 8, "00f067aa0ba902b7"),
    ],
)
def test_normalize_id(value: str, nbytes: int, expected: str) -> None:
    assert normalize_id(value, nbytes) == expected


def test_normalize_id_rejects_wrong_length_base64() -> None:
    with pytest.raises(ValueError, match="neither"):
        normalize_id("t61rcWkgMzE=", 16)


def test_ns_round_trip_is_exact_to_the_microsecond() -> None:
    t = datetime(2026, 3, 4, 5, 6, 7, 891011, tzinfo=UTC)
    assert ns_to_datetime(datetime_to_ns(t)) == t
    assert datetime_to_ns(t) % 1000 == 0


SPANS = [
    Span(TRACE, "b7ad6b7169203331", None, "gpuaas-api", "POST /v1/app-instances/{id}/start", "ok",
         T0, T0 + timedelta(milliseconds=5), {"correlation_id": "c1", "n": 3, "f": 1.5, "b": False}),
    Span(TRACE, "00f067aa0ba902b7", "b7ad6b7169203331", "gpuaas-billing-worker", "billing.handle_usage",
         "error", T0 + timedelta(seconds=1), T0 + timedelta(seconds=2),
         {"list": ["a", 1], "kv": {"k": "v"}}),
    Span(TRACE, "5b8aa5a2d2c872e8", "00f067aa0ba902b7", "gpuaas-billing-worker", "billing.post_ledger",
         "unset", T0 + timedelta(seconds=1, microseconds=7), T0 + timedelta(seconds=1, microseconds=9)),
]  # fmt: skip


@pytest.mark.parametrize("style", ["v1", "v2", "tempo-cli"])
@pytest.mark.parametrize("encoding", ["base64", "hex"])
def test_encode_then_parse_round_trips(style: Any, encoding: Any) -> None:
    doc = json.loads(json.dumps(encode_trace_json(SPANS, style, encoding)))
    assert parse_trace_json(doc) == SPANS


def test_encoded_shapes_match_the_documented_ones() -> None:
    v1 = encode_trace_json(SPANS, "v1", "base64")
    assert set(v1) == {"batches"}
    assert len(v1["batches"]) == 2  # one ResourceSpans per service
    first = v1["batches"][0]["scopeSpans"][0]["spans"][0]
    assert first["traceId"] == "CvdlGRbNQ92ESOshHIAxnA=="
    assert first["spanId"] == "t61rcWkgMzE="
    assert first["startTimeUnixNano"] == "1767225600000000000"
    assert first["status"] == {"code": "STATUS_CODE_OK"}
    assert "parentSpanId" not in first
    v2 = encode_trace_json(SPANS, "v2", "hex")
    assert set(v2["trace"]) == {"resourceSpans"}
    assert v2["trace"]["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["traceId"] == TRACE
    assert set(encode_trace_json(SPANS, "tempo-cli")) == {"resourceSpans"}
    assert encode_trace_json([], "v2")["trace"] == {}
