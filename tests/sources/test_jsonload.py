"""``jsonload.loads`` is ``json.loads``: the same value, or the same error."""

from __future__ import annotations

import json

import pytest

from bot.sources import jsonload

SAME = [
    '{"a": 1, "a": 2, "b": [1.5, -0.0, 1e-7, 0.30000000000000004, 18446744073709551616]}',
    b'{"line": "caf\xc3\xa9 \\u00e9\\n\\t\\/", "n": null, "t": true}',
    ' \n{"a" : 1 } \r\n',
    "1.5e-400",
    # refused by msgspec, decided by the standard library
    '{"a": NaN, "b": Infinity, "c": -Infinity}',
    '{"a": 1e400}',
    '"\\ud800"',
    b'\xef\xbb\xbf{"a": 1}',
    '{"big": ' + "9" * 400 + "}",
]
ERRORS = ['{"a": 1}x', '"\x01"', b'"\xff"', "", "1" * 5000, "[" * 100_000 + "]" * 100_000]


@pytest.mark.parametrize("text", SAME)
def test_the_same_value(text: str | bytes) -> None:
    got, want = jsonload.loads(text), json.loads(text)
    assert repr(got) == repr(want) and type(got) is type(want)


@pytest.mark.parametrize("text", ERRORS)
def test_the_same_error(text: str | bytes) -> None:
    with pytest.raises(BaseException) as want:
        json.loads(text)
    with pytest.raises(want.type):
        jsonload.loads(text)
