"""Validation of the identifiers people type (correlation ids, app instance ids).

The first wall against crafted input: an id is 1 to 128 characters of
``[A-Za-z0-9._:-]``. (LogQL escaping in ``bot.sources.logql`` is the second.)
"""

from __future__ import annotations

import re
from datetime import timedelta

from bot.errors import BadInput

MAX_ID_LEN = 128
_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:\-]*")
_DURATION_RE = re.compile(r"(\d+)([smhdw])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
MAX_SINCE = timedelta(days=90)


def validate_id(value: str, what: str = "correlation id") -> str:
    v = value.strip()
    if not v:
        raise BadInput(f"{what} is empty")
    if len(v) > MAX_ID_LEN:
        raise BadInput(f"{what} is {len(v)} characters long; at most {MAX_ID_LEN} are allowed")
    if not _ID_RE.fullmatch(v):
        bad = sorted({c for c in v if not re.fullmatch(r"[A-Za-z0-9._:\-]", c)})
        shown = ", ".join(repr(c) for c in bad[:5]) or "its first character"
        raise BadInput(
            f"{what} {v[:40]!r} has characters that ids never contain ({shown}); "
            "allowed: letters, digits, '.', '_', ':', '-' (starting with a letter or digit)"
        )
    return v


def parse_duration(text: str) -> timedelta:
    """``90m``, ``48h``, ``7d``, ``2w``, or a sum like ``1d12h``."""
    t = text.strip().lower()
    pos, total = 0, 0
    for m in _DURATION_RE.finditer(t):
        if m.start() != pos:
            break
        total += int(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if not t or pos != len(t) or total <= 0:
        raise BadInput(f"duration {text!r} is not like 90m, 48h or 7d")
    d = timedelta(seconds=total)
    if d > MAX_SINCE:
        raise BadInput(f"duration {text!r} is longer than the {MAX_SINCE.days}-day limit")
    return d
