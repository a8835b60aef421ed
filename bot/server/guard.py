"""Checks on what arrives over HTTP, before anything in it is believed: each answers
``False`` or raises ``ValueError`` (the route answers 401 or 400 with it), whatever the
sender made of the headers and the body, and never lets anything else escape (which
the server would answer 500).

- ``slack_request_verified``: Slack's v0 request signature and its timestamp (at most
  five minutes old). A timestamp that is not a number, or a signature that is not ASCII,
  is a bad signature like any other.
- ``loads_json``: ``json.loads`` that says "nested too deeply" (``ValueError``) for a
  document deeper than the parser's recursion allows, instead of ``RecursionError``.
"""

from __future__ import annotations

import json
from typing import Any

from slack_sdk.signature import SignatureVerifier

__all__ = ["loads_json", "slack_request_verified"]

_MAX_TIMESTAMP_CHARS = 20  # unix seconds for the next few billion years


def slack_request_verified(secret: str, body: str, timestamp: str, signature: str) -> bool:
    """Whether ``signature`` is Slack's signature of ``body`` at ``timestamp`` with
    ``secret``, and ``timestamp`` is recent. False for anything malformed."""
    if not timestamp or not signature or not signature.isascii():
        return False
    if len(timestamp) > _MAX_TIMESTAMP_CHARS or not timestamp.isascii() or not timestamp.isdigit():
        return False
    try:
        return SignatureVerifier(secret).is_valid(body, timestamp, signature)
    except (ValueError, TypeError, UnicodeError):
        return False


def loads_json(text: str | bytes) -> Any:
    """The JSON document of ``text``; ``ValueError`` saying why when it is not JSON or is
    nested too deeply to read."""
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("the document is nested too deeply") from None
