"""Strategies and a probe for the tests that hold a typed fast path to its generic parser
(``test_otlp_typed.py``, ``test_loki_typed.py``): documents that are mostly well formed,
each part now and then any JSON value instead."""

from __future__ import annotations

import json
from collections.abc import Callable, Sized
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

JSON: st.SearchStrategy[Any] = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)


def mostly(good: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``good``, but once in 25 any JSON value instead."""
    return st.integers(1, 25).flatmap(lambda i: JSON if i == 1 else good)


def answers(documents: st.SearchStrategy[Any], fast: Callable[[bytes], Sized | None],
            examples: int = 300) -> list[Sized | None]:
    """What ``fast`` gives for ``examples`` generated documents (the same ones each run)."""
    seen: list[Sized | None] = []

    @settings(max_examples=examples, deadline=None, database=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow])
    @given(documents)
    def probe(doc: Any) -> None:
        seen.append(fast(json.dumps(doc).encode()))

    probe()
    return seen


def assert_reaches_the_fast_path(seen: list[Sized | None], *, taken_min: int = 30, items_min: int = 30) -> None:
    """The property tests are worth something only if the fast path answers, with items,
    for many generated documents, and leaves others to the generic parser. (Derandomized,
    hypothesis still draws a little differently after other tests: 56–98 spans of 300
    documents have been seen, hence the margin.)"""
    taken = [s for s in seen if s is not None]
    assert len(taken) > taken_min and sum(map(len, taken)) > items_min and len(taken) < len(seen), \
        (len(taken), sum(map(len, taken)), len(seen))
