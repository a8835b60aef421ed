"""The typed fast path of a Loki ``query_range`` answer (``parse_query_range_bytes``)
against the generic parser (``parse_query_range``): where the fast path answers, its
entries are the generic parser's; where it does not (None), the generic parser decides,
so a query's entries or error never depend on which path ran."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.sources import jsonload
from bot.sources.loki import parse_query_range, parse_query_range_bytes
from tests.sources.fastpath import JSON, answers, assert_reaches_the_fast_path, mostly


def generic(data: bytes) -> list[Any] | str:
    try:
        return parse_query_range(jsonload.loads(data))
    except ValueError as e:
        return f"error: {e}"


def answer(*streams: Any, status: Any = "success", **data: Any) -> dict[str, Any]:
    return {"status": status, "data": {"resultType": "streams", "result": list(streams), **data}}


LINE = '{"event":"x","correlation_id":"c1"}'
STREAM = {"stream": {"service": "api"}, "values": [["1700000000000000001", LINE],
                                                   ["1700000000000000002", LINE, {"parsed": {"a": "b"}}]]}


def test_a_categorized_answer_takes_the_fast_path_with_the_generic_entries() -> None:
    data = json.dumps(answer(STREAM, {"values": [["3", "not json"]]}, encodingFlags=["categorize-labels"])).encode()
    fast = parse_query_range_bytes(data)
    assert fast is not None and fast == generic(data) and len(fast) == 3


@pytest.mark.parametrize("doc", [
    [], "x", {}, {"status": "success"}, answer(status="error"), answer(status=None), {"status": "success", "data": []},
    answer(resultType="matrix"), answer(resultType=None),
    answer({"values": [["1", LINE, {}, "extra"]]}), answer({"values": [["1"]]}), answer({"values": [[1, LINE]]}),
    answer({"values": [["soon", LINE]]}), answer({"values": [[" 12 ", LINE]]}), answer({"values": [["1_0", LINE]]}),
    answer({"values": [["1", 5]]}), answer({"values": {"1": LINE}}), answer({"stream": None, "values": []}),
    answer({"stream": {"n": 5}, "values": [["1", LINE]]}), answer({"stream": [], "values": []}), answer("stream"),
    {"status": "success", "data": {"result": [STREAM]}}, {"status": "success", "data": {"result": None}},
])  # fmt: skip
def test_odd_answers_give_the_generic_entries_or_are_left_to_it(doc: Any) -> None:
    data = json.dumps(doc).encode()
    fast = parse_query_range_bytes(data)
    assert fast is None or fast == generic(data)


_value = mostly(st.tuples(mostly(st.integers(0, 2**63).map(str)), mostly(st.text(max_size=8)))
                | st.tuples(st.integers(0, 2**63).map(str), st.text(max_size=8), JSON))
_stream = mostly(st.fixed_dictionaries({"values": mostly(st.lists(_value, max_size=4))},
                                       optional={"stream": mostly(st.dictionaries(st.text(max_size=4),
                                                                                  st.text(max_size=4), max_size=3))}))
_answer = mostly(st.fixed_dictionaries({
    "status": mostly(st.just("success")),
    "data": mostly(st.fixed_dictionaries({"result": mostly(st.lists(_stream, max_size=3))},
                                         optional={"resultType": mostly(st.just("streams"))})),
}))


def test_the_generated_answers_reach_the_fast_path_with_entries() -> None:
    assert_reaches_the_fast_path(answers(_answer, parse_query_range_bytes))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_answer)
def test_generated_answers_give_the_generic_entries_or_are_left_to_it(doc: Any) -> None:
    data = json.dumps(doc).encode()
    fast = parse_query_range_bytes(data)
    assert fast is None or fast == generic(data)
