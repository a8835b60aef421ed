"""JSON of the sources' answers, decoded by msgspec: several times faster than the
standard library on Loki's and Tempo's big answers (a Loki answer is JSON whose every log
line is JSON again), with the same values. What msgspec refuses (``NaN``, numbers out of
range, lone surrogates, malformed text, …) goes to ``json.loads``, so the result, or the
error, is always the standard library's."""

from __future__ import annotations

import json
from typing import Any

import msgspec

_DECODER = msgspec.json.Decoder()


def loads(data: bytes | str) -> Any:
    """``json.loads(data)``."""
    try:
        return _DECODER.decode(data)
    except Exception:  # whatever msgspec refuses, the standard library decides
        return json.loads(data)
