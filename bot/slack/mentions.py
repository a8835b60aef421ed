"""What a Slack message names: ids of the platform's shapes and a window. Pure.

A dispute pasted into Slack ("org-acme says its November app-runtime charges are wrong,
see corr-acme-3f9a…") names the ids the modal of the ``recon_reconcile`` shortcut is
pre-filled with. The text, the attachments (``text``, ``pretext``, ``fallback``,
``title``, ``fields``) and the blocks (every ``text`` in them, at any depth) are read;
Slack's link markup ``<url|label>`` is read as both parts.

- ids of the platform's shapes (``bot.contract/platform.md``): ``corr-…``, ``ai-…``,
  ``org-…``, ``prj-…``, and any id written after its field name
  (``correlation_id: X``, ``app_instance_id=X``, ``org_id X``, ``project_id: X``);
  each validated as ``bot.ids`` does, first seen first, at most ``MAX_IDS`` of a kind;
- a window: a month (``2026-11``, ``November 2026``) is that whole month; ``last 48h``,
  ``past 7 days`` is that long back from now.

Reading stops after ``MAX_CHARS`` characters: a message is hostile input like any other.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.errors import BadInput
from bot.ids import MAX_SINCE, validate_id

MAX_CHARS = 40_000
MAX_IDS = 10
MAX_DEPTH = 12

_ID = r"[A-Za-z0-9][A-Za-z0-9._:\-]{0,127}"
_REST = r"[A-Za-z0-9][A-Za-z0-9._:\-]{0,123}"
_SHAPES = {
    "correlation_ids": re.compile(rf"(?<![\w.:-])(corr-{_REST})(?![\w.:-])"),
    "app_instance_ids": re.compile(rf"(?<![\w.:-])(ai-{_REST})(?![\w.:-])"),
    "org_ids": re.compile(rf"(?<![\w.:-])(org-{_REST})(?![\w.:-])"),
    "project_ids": re.compile(rf"(?<![\w.:-])(prj-{_REST})(?![\w.:-])"),
}
_LABELLED = re.compile(
    rf"\b(correlation_id|app_instance_id|org_id|project_id)\s*[:=]?\s*[`'\"]?({_ID})(?![\w.:-])")
_KIND_OF_LABEL = {"correlation_id": "correlation_ids", "app_instance_id": "app_instance_ids",
                  "org_id": "org_ids", "project_id": "project_ids"}
_MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
           "november", "december")
_ISO_MONTH = re.compile(r"\b(20\d\d)-(0[1-9]|1[0-2])\b(?!-\d)")
_NAMED_MONTH = re.compile(r"\b(" + "|".join(_MONTHS) + r")\s+(20\d\d)\b", re.IGNORECASE)
_LAST = re.compile(r"\b(?:last|past)\s+(\d{1,3})\s*(h|hours?|d|days?|w|weeks?)\b", re.IGNORECASE)
_LINK = re.compile(r"<([^<>|]{1,2000})\|([^<>]{0,2000})>")


@dataclass(slots=True)
class Mentions:
    correlation_ids: list[str] = field(default_factory=list)
    app_instance_ids: list[str] = field(default_factory=list)
    org_ids: list[str] = field(default_factory=list)
    project_ids: list[str] = field(default_factory=list)
    start: datetime | None = None
    end: datetime | None = None

    def add(self, kind: str, value: str) -> None:
        got: list[str] = getattr(self, kind)
        v = value.rstrip(".:-")
        if v in got or len(got) >= MAX_IDS:
            return
        try:
            got.append(validate_id(v, kind))
        except BadInput:
            return

    @property
    def empty(self) -> bool:
        return not (self.correlation_ids or self.app_instance_ids or self.org_ids or self.project_ids)


def message_texts(message: Mapping[str, Any]) -> Iterator[str]:
    """Every text of a message (text, attachments, blocks), links read as url and label."""
    if isinstance(message.get("text"), str):
        yield message["text"]
    for att in message.get("attachments") or []:
        if not isinstance(att, Mapping):
            continue
        for key in ("pretext", "title", "text", "fallback"):
            if isinstance(att.get(key), str):
                yield att[key]
        for f in att.get("fields") or []:
            if isinstance(f, Mapping):
                yield f"{f.get('title', '')}: {f.get('value', '')}"
    yield from _block_texts(message.get("blocks") or [], 0)


def _block_texts(node: Any, depth: int) -> Iterator[str]:
    if depth > MAX_DEPTH:
        return
    if isinstance(node, list):
        for item in node:
            yield from _block_texts(item, depth + 1)
    elif isinstance(node, Mapping):
        for key, value in node.items():
            if key == "text" and isinstance(value, str):
                yield value
            elif isinstance(value, (list, Mapping)):
                yield from _block_texts(value, depth + 1)


def read_mentions(message: Mapping[str, Any], now: datetime) -> Mentions:
    """The ids and the window a message names."""
    text = ""
    for t in message_texts(message):
        text += "\n" + t
        if len(text) > MAX_CHARS:
            text = text[:MAX_CHARS]
            break
    text = _LINK.sub(lambda m: f"{m.group(1)} {m.group(2)}", text)
    found = Mentions()
    hits: list[tuple[int, str, str]] = []
    for m in _LABELLED.finditer(text):
        hits.append((m.start(2), _KIND_OF_LABEL[m.group(1)], m.group(2)))
    for kind, rx in _SHAPES.items():
        hits.extend((m.start(1), kind, m.group(1)) for m in rx.finditer(text))
    for _, kind, value in sorted(hits):
        found.add(kind, value)
    found.start, found.end = _window(text, now)
    return found


def _window(text: str, now: datetime) -> tuple[datetime | None, datetime | None]:
    m = _ISO_MONTH.search(text)
    if m:
        return _month(int(m.group(1)), int(m.group(2)), now)
    m = _NAMED_MONTH.search(text)
    if m:
        return _month(int(m.group(2)), _MONTHS.index(m.group(1).lower()) + 1, now)
    m = _LAST.search(text)
    if m:
        n, unit = int(m.group(1)), m.group(2)[0].lower()
        back = timedelta(hours=n) if unit == "h" else timedelta(days=n * (7 if unit == "w" else 1))
        if back <= MAX_SINCE:
            return now - back, now
    return None, None


def _month(year: int, month: int, now: datetime) -> tuple[datetime | None, datetime | None]:
    start = datetime(year, month, 1, tzinfo=UTC)
    end = (start + timedelta(days=32)).replace(day=1)
    if start >= now:
        return None, None
    return start, min(end, now)
