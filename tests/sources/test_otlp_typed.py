"""The typed fast path of a trace answer (bot.sources.otlp_typed) against the generic
parser (bot.sources.otlp.parse_trace_json): wherever the fast path answers, its spans are
the generic parser's; where it does not (None), the generic parser is what decides, so the
caller's spans or error never depend on which path ran."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.sources import jsonload
from bot.sources.otlp import encode_trace_json, parse_trace_json
from bot.sources.otlp_typed import parse_trace_bytes
from tests.sources.fastpath import JSON, answers, assert_reaches_the_fast_path, mostly
from tests.sources.test_otlp import SPANS, _one_span

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "tempo"


def generic(data: bytes) -> list[Any] | str:
    """parse_trace_json's spans, or its error's message."""
    try:
        return parse_trace_json(jsonload.loads(data))
    except ValueError as e:
        return f"error: {e}"


def same(data: bytes) -> bool:
    """The fast path's spans are the generic parser's, or it leaves the document to it."""
    fast = parse_trace_bytes(data)
    return fast is None or repr(fast) == repr(generic(data))  # repr: a NaN attribute equals itself


@pytest.mark.parametrize("name", sorted(p.name for p in FIX.glob("*.json")))
def test_every_fixture_is_taken_by_the_fast_path_as_the_generic_parser_takes_it(name: str) -> None:
    data = (FIX / name).read_bytes()
    fast = parse_trace_bytes(data)
    want = generic(data)
    if isinstance(want, str) or not want:
        assert fast is None or fast == want  # an error, or no spans ({"trace": {}}), is the generic parser's
    else:
        assert fast == want


@pytest.mark.parametrize("style", ["v1", "v2", "tempo-cli"])
@pytest.mark.parametrize("encoding", ["base64", "hex"])
def test_tempo_shapes_take_the_fast_path(style: Any, encoding: Any) -> None:
    data = json.dumps(encode_trace_json(SPANS, style, encoding)).encode()
    assert parse_trace_bytes(data) == SPANS


@pytest.mark.parametrize("doc", [
    "not a trace", [], {}, {"spans": []}, {"batches": {"x": 1}}, {"trace": []}, {"trace": None},
    {"trace": {"trace": {"resourceSpans": []}}},
    _one_span(traceId="zz"), _one_span(spanId=None), _one_span(startTimeUnixNano="soon"),
    _one_span(startTimeUnixNano=True), _one_span(startTimeUnixNano=1.5), _one_span(startTimeUnixNano=" 12 "),
    _one_span(status={"code": "STATUS_CODE_BROKEN"}), _one_span(status={"code": 7}), _one_span(status="ok"),
    _one_span(status={"code": "2"}), _one_span(status=[]), _one_span(name=5), _one_span(name=None),
    _one_span(parentSpanId=""), _one_span(parentSpanId=0), _one_span(parentSpanId="CvdlGRbNQ92ESOshHIAxnA=="),
    _one_span(attributes=[{"value": {"stringValue": "no key"}}]),
    _one_span(attributes=[{"key": "k"}]), _one_span(attributes=[{"key": "k", "value": None}]),
    _one_span(attributes=[{"key": "k", "value": {"stringValue": None}}]),
    _one_span(attributes=[{"key": "k", "value": {"stringValue": 5}}]),
    _one_span(attributes=[{"key": "k", "value": {"stringValue": "s", "intValue": "3"}}]),
    _one_span(attributes=[{"key": "k", "value": {"intValue": "3", "boolValue": True}}]),
    _one_span(attributes=[{"key": "k", "value": {"doubleValue": "NaN"}}]),
    _one_span(attributes=[{"key": "k", "value": {"kvlistValue": {"values": [{"key": "a", "value": {}}]}}}]),
    _one_span(attributes=[{"key": "k", "value": {"stringValue": "a"}}, {"key": "k", "value": {"intValue": 2}}]),
    _one_span(attributes={"k": "v"}),
    {"resourceSpans": [{"resource": None, "instrumentationLibrarySpans": [{"spans": [
        _one_span()["resourceSpans"][0]["scopeSpans"][0]["spans"][0]]}]}]},
    {"resourceSpans": [{"resource": {"attributes": [{"key": "service.name", "value": {"intValue": "0"}}]},
                        "scopeSpans": None, "instrumentationLibrarySpans": [{"spans": None}]}]},
])  # fmt: skip
def test_odd_documents_give_the_generic_answer_or_are_left_to_it(doc: Any) -> None:
    assert same(json.dumps(doc).encode())


def test_a_trace_id_reused_as_a_span_id_is_refused_as_the_generic_parser_refuses_it() -> None:
    # the fast path caches each id's normal form; a trace id is not a span id's
    doc = _one_span(traceId="0af7651916cd43dd8448eb211c80319c", parentSpanId="0af7651916cd43dd8448eb211c80319c")
    data = json.dumps(doc).encode()
    assert parse_trace_bytes(data) is None and "parentSpanId" in str(generic(data))


def test_duplicate_keys_are_read_as_the_generic_parser_reads_them() -> None:
    span = json.dumps(_one_span()["resourceSpans"][0]["scopeSpans"][0]["spans"][0])
    twice = span[:-1] + ', "name": "second"}'
    data = ('{"resourceSpans": [{"scopeSpans": [{"spans": [' + twice + ']}]}]}').encode()
    fast = parse_trace_bytes(data)
    assert fast is not None and fast == generic(data) and fast[0].name == "second"


_value = mostly(st.fixed_dictionaries({}, optional={
    "stringValue": mostly(st.text(max_size=4)), "intValue": mostly(st.integers() | st.integers().map(str)),
    "boolValue": mostly(st.booleans()), "doubleValue": mostly(st.floats()), "arrayValue": JSON,
    "kvlistValue": JSON, "bytesValue": JSON}))
_kv = mostly(st.fixed_dictionaries({"key": mostly(st.sampled_from(["service.name", "k", "n"]))},
                                   optional={"value": _value}))
_span = mostly(st.fixed_dictionaries(
    {"traceId": mostly(st.sampled_from(["CvdlGRbNQ92ESOshHIAxnA==", "0af7651916cd43dd8448eb211c80319c"])),
     "spanId": mostly(st.sampled_from(["t61rcWkgMzE=", "b7ad6b7169203331", "f067aa0ba902b7"]))},
    optional={
        "parentSpanId": mostly(st.sampled_from(["t61rcWkgMzE=", "b7ad6b7169203331", ""])),
        "name": mostly(st.text(max_size=4)),
        "status": mostly(st.fixed_dictionaries({}, optional={
            "code": st.sampled_from(["STATUS_CODE_OK", "ERROR", "1", 2, 9])})),
        "startTimeUnixNano": mostly(st.integers(0, 2**62) | st.integers(0, 2**62).map(str)),
        "endTimeUnixNano": mostly(st.integers(0, 2**62).map(str)),
        "attributes": mostly(st.lists(_kv, max_size=3)),
    }))
_scopes = mostly(st.lists(st.fixed_dictionaries({"spans": mostly(st.lists(_span, min_size=1, max_size=3))}),
                          min_size=1, max_size=2))
_rs = mostly(st.one_of(
    st.fixed_dictionaries({"scopeSpans": _scopes}, optional={
        "resource": mostly(st.fixed_dictionaries({}, optional={"attributes": st.lists(_kv, max_size=2)})),
        "instrumentationLibrarySpans": _scopes}),
    st.fixed_dictionaries({}, optional={"instrumentationLibrarySpans": _scopes}),
))
_doc = mostly(st.one_of(
    st.fixed_dictionaries({"batches": mostly(st.lists(_rs, min_size=1, max_size=2))}),
    st.fixed_dictionaries({"resourceSpans": mostly(st.lists(_rs, min_size=1, max_size=2))}),
    st.fixed_dictionaries({"trace": mostly(st.fixed_dictionaries({
        "resourceSpans": st.lists(_rs, min_size=1, max_size=2)}))}),
))


def test_the_generated_documents_reach_the_fast_path_with_spans() -> None:
    assert_reaches_the_fast_path(answers(_doc, parse_trace_bytes))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_doc)
def test_generated_documents_give_the_generic_answer_or_are_left_to_it(doc: Any) -> None:
    assert same(json.dumps(doc).encode())
