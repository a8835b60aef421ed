"""Recognise alert posts that Alertmanager's or Grafana's Slack integrations made.

Such posts arrive as ``message`` events with a ``bot_id`` (and no subtype, or
``bot_message``); the content is in ``attachments`` or ``blocks`` and ``text`` may
be empty (protocols.md §1). ``parse_alert_post`` reads what the stock templates and
the common custom ones render:

* titles like ``[FIRING:2] AppRuntimeMeteringDrift acme (page prod)`` (Alertmanager's
  and Grafana's ``__subject``: group-label values, then the other common-label values
  in parentheses; Alertmanager puts ``alertname`` first), ``[FIRING:1, RESOLVED:1] …``,
  ``FIRING: X``, and ``key=value`` pairs in a title
  (``[FIRING:2] AppRuntimeMeteringDrift (org_id=acme severity=page)``);
* Grafana's ``default.message`` / Alertmanager's ``__text_alert_list``: ``**Firing**`` /
  ``**Resolved**`` sections, ``Value:``, ``Labels:`` and ``Annotations:`` headings with
  `` - name = value`` lines, ``Source: <url>``;
* the usual custom Slack text: ``*Alert:* summary - `page```, ``*Description:* …``,
  ``*Details:*``, `` • *org_id:* `acme```, ``• org_id: acme``, ``*severity:* page``;
* attachment ``fields`` (``{"title": "org_id", "value": "acme"}``), section ``fields``,
  ``header``/``section``/``rich_text``/``context`` blocks;
* the status from the title or text, else the attachment colour (``danger``/``good``,
  Grafana's ``#D63232``/``#36a64f``).

A message with neither an alert status marker nor an ``alertname`` label is not an
alert: ``None``. So are messages without ``bot_id``, other subtypes, and recon's own
posts (``metadata.event_type`` ``recon_post``; callers also filter by bot id).
Id labels (org_id, project_id, app_instance_id, correlation_id) whose values are not
1..128 characters of ``[A-Za-z0-9._:-]`` are dropped.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from bot.alerts.model import Alert, AlertNotification, safe_labels
from bot.alerts.parse import MAX_ALERTS, alert_fingerprint

__all__ = ["RECON_METADATA_EVENT", "bot_ids", "from_alert_bot", "parse_alert_post"]

Status = Literal["firing", "resolved"]

RECON_METADATA_EVENT = "recon_post"  # bot.slack.poster.METADATA_EVENT
MAX_TEXT = 40_000  # characters of message text examined
MAX_PARTS = 50  # attachments / blocks / fields examined
MAX_VALUE = 1024  # longest label or annotation value kept

_LABEL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
_ALERTNAME = re.compile(r"[A-Za-z_][A-Za-z0-9_:.\-]{0,127}")
# [FIRING:2] / [RESOLVED] / [FIRING:1, RESOLVED:1]
_BRACKET = re.compile(r"\[\s*(FIRING|RESOLVED)\s*(?::\s*\d+)?(?:\s*,\s*RESOLVED\s*:\s*\d+)?\s*\]", re.IGNORECASE)
# FIRING / RESOLVED as the first word (after emoji or punctuation): "FIRING: X", ":fire: RESOLVED - X"
_LEADING = re.compile(r"^(?:\s|:[a-z0-9_+\-]+:|[^\w\s])*(FIRING|RESOLVED)\b")
_KV = re.compile(r"""(?<![\w.])([A-Za-z_][A-Za-z0-9_]*)=(?:"([^"]*)"|'([^']*)'|([^\s,()\[\]{}"']+))""")
# " - name = value" (__text_alert_list)
_DASH_KV = re.compile(r"^\s*[-•*]\s+([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$")
# "• *name:* `value`", "*name:* value", "- *name*: value", "• name: value", "_name:_ value"
_BOLD_KV = re.compile(r"^\s*(?:[-•◦▪*]\s+)?([*_]{1,2})([A-Za-z][A-Za-z0-9_ ]{0,60}?)(?::\1|\1:)\s*(.*?)\s*$")
_BULLET_KV = re.compile(r"^\s*[-•◦▪]\s+([A-Za-z_][A-Za-z0-9_]*):\s+(.*?)\s*$")
_HEADING = re.compile(r"^\s*[*_]{0,2}\s*([A-Za-z][A-Za-z ]{0,30}?)\s*:?\s*[*_]{0,2}\s*:?\s*$")
_URL_LINE = re.compile(r"^\s*(Source|Silence|Dashboard|Panel|Image)\s*:\s*(\S+)\s*$", re.IGNORECASE)
_VALUE_LINE = re.compile(r"^\s*[*_]{0,2}Value[*_]{0,2}\s*:", re.IGNORECASE)
_SLACK_LINK = re.compile(r"<((?:https?|mailto):[^|>\s]+)(?:\|[^>]*)?>")
_SEV_SUFFIX = re.compile(r"^(.*?)\s+-\s+`([^`]+)`$")

_ANNOTATION_KEYS = {
    "summary": "summary",
    "description": "description",
    "runbook_url": "runbook_url",
    "runbook": "runbook_url",
    "message": "description",
}
_FIRING_COLOURS = {"danger", "warning", "#d63232", "#e01e5a", "#ff0000", "#f00", "#d00000"}
_RESOLVED_COLOURS = {"good", "#36a64f", "#2eb886", "#2eb67d", "#00ff00", "#0f0"}


@dataclass
class _Draft:
    status: Status | None = None
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    generator_url: str | None = None

    def empty(self) -> bool:
        return not self.labels and not self.annotations


@dataclass
class _Reader:
    """Line-by-line state machine over the message's text."""

    drafts: list[_Draft] = field(default_factory=list)
    cur: _Draft = field(default_factory=_Draft)
    section: Status | None = None
    mode: Literal["labels", "annotations"] | None = None
    status_seen: Status | None = None  # first status marker in text
    status_text: str | None = None  # the line that carried it
    alertname_hint: str | None = None  # first bare word of a status title

    def flush(self) -> None:
        if not self.cur.empty():
            self.drafts.append(self.cur)
        self.cur = _Draft(status=self.section)
        self.mode = None

    def line(self, raw: str) -> None:
        text = _clean_line(raw)
        if not text.strip():
            return
        if self._status_line(text):
            return
        section = _section_marker(text)
        if section is not None:
            self.flush()
            self.section = section
            self.cur.status = section
            return
        head = _HEADING.fullmatch(text)
        if head is not None:
            word = head.group(1).strip().lower()
            if word == "labels":
                if self.cur.labels:
                    self.flush()
                self.mode = "labels"
                return
            if word == "annotations":
                self.mode = "annotations"
                return
            if word in ("details", "alert details"):
                self.mode = "labels"
                return
        if _VALUE_LINE.match(text):
            if not self.cur.empty():
                self.flush()
            return
        url = _URL_LINE.fullmatch(text)
        if url is not None:
            if url.group(1).lower() == "source":
                self.cur.generator_url = _clean_value(url.group(2))
            return
        m = _DASH_KV.fullmatch(text)
        if m is not None:
            name, value = m.group(1), _clean_value(m.group(2))
            if self.mode == "annotations":
                self.cur.annotations[name] = value
            else:
                self.cur.labels[name] = value
            return
        m = _BOLD_KV.fullmatch(text) or _BULLET_KV.fullmatch(text)
        if m is not None:
            key, value = (m.group(2), m.group(3)) if m.re is _BOLD_KV else (m.group(1), m.group(2))
            if key.strip().lower() == "alert" and not self.cur.empty():
                self.flush()
            _classify(key, value, self.cur.labels, self.cur.annotations)

    def _status_line(self, text: str) -> bool:
        """A title-like line carrying a status: note it (and the alertname hint)."""
        status, rest = _title_status(text)
        if status is None:
            return False
        if self.status_seen is None:
            self.status_seen = status
            self.status_text = text.strip()
            if self.alertname_hint is None:
                self.alertname_hint = _first_word(rest)
        return True


def parse_alert_post(event: Mapping[str, Any]) -> AlertNotification | None:
    """An ``AlertNotification`` for an alert post by another integration, else None."""
    if not _foreign_post(event):
        return None
    post = _Post()
    post.read(event)
    title_status, hint, title_labels = _read_titles(post)
    drafts, truncated = _drafts(post, title_labels, hint)
    section_statuses = {d.status for d in drafts if d.status is not None}
    if title_status is None and not any(d.labels.get("alertname") for d in drafts) and not section_statuses:
        return None
    status = title_status or _fallback_status(section_statuses, post.colours)
    alerts = _alerts(drafts, status)
    return AlertNotification(
        source="slack",
        group_key=f"slack:{event['channel']}:{event['ts']}",
        status=status,
        receiver=None,
        group_labels={},
        common_labels=_intersection([a.labels for a in alerts]),
        common_annotations=_intersection([a.annotations for a in alerts]),
        external_url=None,
        alerts=alerts,
        truncated_alerts=truncated,
        title=post.titles[0] if post.titles else None,
    )


def bot_ids(spec: str) -> frozenset[str] | None:
    """``RECON_ALERT_BOTS``: bot ids ``B…`` and app ids ``A…``; ``None`` when unset (any bot)."""
    return frozenset(x.strip() for x in spec.split(",") if x.strip()) or None


def from_alert_bot(event: Mapping[str, Any], allowed: frozenset[str] | None) -> bool:
    """Posted by a bot (a person's message has no ``bot_id``) that may post alerts: any
    bot when ``allowed`` is ``None``, else one whose bot id or app id is in it."""
    profile = event.get("bot_profile")
    profile = profile if isinstance(profile, Mapping) else {}
    ids = (event.get("bot_id"), event.get("app_id"), profile.get("id"), profile.get("app_id"))
    return bool(event.get("bot_id")) and (allowed is None or any(isinstance(i, str) and i in allowed for i in ids))


def _foreign_post(event: Mapping[str, Any]) -> bool:
    """A message another integration posted (not recon's own, not a person's), in a
    channel at a ts."""
    if event.get("type", "message") != "message":
        return False
    if not event.get("bot_id") or event.get("subtype") not in (None, "bot_message"):
        return False
    metadata = event.get("metadata")
    if isinstance(metadata, Mapping) and str(metadata.get("event_type", "")).startswith("recon"):
        return False
    channel, ts = event.get("channel"), event.get("ts")
    return isinstance(channel, str) and bool(channel) and isinstance(ts, str) and bool(ts)


@dataclass
class _Post:
    """What the parts of one post say, read in order: attachments, then blocks, then the
    message text; at most ``MAX_TEXT`` characters of text in all."""

    reader: _Reader = field(default_factory=_Reader)
    titles: list[str] = field(default_factory=list)
    colours: list[str] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)  # common to all its alerts
    annotations: dict[str, str] = field(default_factory=dict)
    budget: int = MAX_TEXT

    def feed(self, text: object, *, flush: bool = True) -> None:
        if isinstance(text, str) and self.budget > 0:
            text = text[: self.budget]
            self.budget -= len(text)
            for ln in text.splitlines():
                self.reader.line(ln)
        if flush:
            self.reader.flush()

    def read(self, event: Mapping[str, Any]) -> None:
        attachments = [a for a in _list(event.get("attachments")) if isinstance(a, Mapping)]
        blocks = [b for b in _list(event.get("blocks")) if isinstance(b, Mapping)]
        for att in attachments:
            self.attachment(att)
        for block in blocks:
            self.block(block)
        self.reader.flush()
        if not attachments and not blocks:
            self.feed(event.get("text"))
        elif isinstance(event.get("text"), str) and not self.titles:
            # Blocks-based posts often repeat the title as the notification text.
            first = event["text"].strip().splitlines()[:1]
            if first and _title_status(_clean_line(first[0]))[0] is not None:
                self.titles.append(_clean_line(first[0]))
        if not self.titles and self.reader.status_text:
            self.titles.append(self.reader.status_text)  # a status line in the text is the title

    def attachment(self, att: Mapping[str, Any]) -> None:
        title = att.get("title")
        if isinstance(title, str) and title.strip():
            self.titles.append(_clean_line(title))
        colour = att.get("color")
        if isinstance(colour, str):
            self.colours.append(colour.strip().lower())
        for f in _list(att.get("fields")):
            if isinstance(f, Mapping) and isinstance(f.get("title"), str) and isinstance(f.get("value"), str):
                _classify(f["title"], f["value"], self.labels, self.annotations)
        self.feed(att.get("pretext"))
        self.feed(att.get("text"))
        if not (isinstance(title, str) and title.strip()) and not att.get("text"):
            self.feed(att.get("fallback"))

    def block(self, block: Mapping[str, Any]) -> None:
        btype = block.get("type")
        if btype == "header":
            t = _text_of(block.get("text"))
            if t.strip():
                self.titles.append(_clean_line(t))
        elif btype == "section":  # one alert may span several sections: no flush
            self.feed(_text_of(block.get("text")), flush=False)
            for f in _list(block.get("fields")):
                self.feed(_text_of(f), flush=False)
        elif btype == "rich_text":
            self.feed("".join(_rich_text(block.get("elements"), depth=0)), flush=False)
        elif btype == "context":
            for el in _list(block.get("elements")):
                self.feed(_text_of(el), flush=False)
        elif btype == "divider":
            self.reader.flush()


def _read_titles(post: _Post) -> tuple[Status | None, str | None, dict[str, str]]:
    """The titles' status, key=value pairs, and the first bare word (the alertname when
    grouped by it); else the status and hint the text carried."""
    title_status: Status | None = None
    hint: str | None = None
    title_labels: dict[str, str] = {}
    for t in post.titles:
        st, rest = _title_status(t)
        for m in _KV.finditer(t):
            value = next(g for g in (m.group(2), m.group(3), m.group(4)) if g is not None)
            _classify(m.group(1), value, title_labels, post.annotations, lower_only=True)
        if st is not None and title_status is None:
            title_status, hint = st, _first_word(rest)
    if title_status is None and post.reader.status_seen is not None:
        title_status = post.reader.status_seen
    return title_status, hint or post.reader.alertname_hint, title_labels


def _drafts(post: _Post, title_labels: Mapping[str, str], hint: str | None) -> tuple[list[_Draft], int]:
    """The alerts read (at most ``MAX_ALERTS``; how many more), each with the post's
    common labels and annotations, and the alertname hint when none has one."""
    drafts = post.reader.drafts[:MAX_ALERTS]
    truncated = max(0, len(post.reader.drafts) - MAX_ALERTS)
    for k, v in title_labels.items():
        post.labels.setdefault(k, v)
    if not drafts:
        drafts = [_Draft()]
    for d in drafts:
        for k, v in post.labels.items():
            d.labels.setdefault(k, v)
        for k, v in post.annotations.items():
            d.annotations.setdefault(k, v)
    if hint and _ALERTNAME.fullmatch(hint) and not any("alertname" in d.labels for d in drafts):
        for d in drafts:
            d.labels["alertname"] = hint
    return drafts, truncated


def _alerts(drafts: list[_Draft], status: Status) -> list[Alert]:
    """One ``Alert`` per draft with safe labels; a repeated label set counts once."""
    alerts: list[Alert] = []
    seen: set[str] = set()
    for d in drafts:
        labels = safe_labels(d.labels)
        fp = alert_fingerprint(labels)
        if labels and fp in seen:
            continue
        seen.add(fp)
        alerts.append(Alert(status=d.status or status, labels=labels, annotations=dict(d.annotations),
                            starts_at=None, ends_at=None, fingerprint=fp, generator_url=d.generator_url))
    return alerts


# ---------------------------------------------------------------- helpers


def _list(value: object) -> list[Any]:
    return value[:MAX_PARTS] if isinstance(value, list) else []


def _text_of(obj: object) -> str:
    """The text of a text object ``{"type": "mrkdwn", "text": …}`` or an element with ``text``."""
    if isinstance(obj, Mapping):
        t = obj.get("text")
        if isinstance(t, str):
            return t
        if isinstance(t, Mapping):
            return _text_of(t)
    return ""


def _rich_text(elements: object, depth: int) -> Iterator[str]:
    """The plain text of rich_text elements (sections, lists, preformatted, quotes)."""
    if depth > 4:
        return
    for el in _list(elements):
        if not isinstance(el, Mapping):
            continue
        etype = el.get("type")
        if etype in ("text", "link", "emoji", "user", "channel"):
            text = el.get("text") if etype != "link" else (el.get("text") or el.get("url"))
            if etype == "emoji":
                text = f":{el.get('name', '')}:"
            if isinstance(text, str):
                style = el.get("style")
                if isinstance(style, Mapping) and style.get("code"):
                    text = f"`{text}`"
                if isinstance(style, Mapping) and style.get("bold"):
                    text = f"*{text}*"
                yield text
        elif etype == "rich_text_list":
            for item in _list(el.get("elements")):
                yield "\n• "
                yield from _rich_text(item.get("elements") if isinstance(item, Mapping) else None, depth + 1)
            yield "\n"
        else:  # rich_text_section, rich_text_preformatted, rich_text_quote
            yield from _rich_text(el.get("elements"), depth + 1)
            yield "\n"


def _clean_line(text: str) -> str:
    """Slack mrkdwn to plain-ish text: entities unescaped, ``<url|label>`` -> url."""
    text = _SLACK_LINK.sub(lambda m: m.group(1), text)
    return html.unescape(text).replace("\u00a0", " ")


def _clean_value(value: str) -> str:
    v = _clean_line(value).strip()
    for _ in range(3):
        stripped = v.strip("`*_\"' ").strip()
        if stripped == v:
            break
        v = stripped
    return v[:MAX_VALUE]


def _title_status(text: str) -> tuple[Status | None, str]:
    """(status, the rest of the title after the marker) for a title-like line."""
    m = _BRACKET.search(text)
    if m is None:
        m = _LEADING.match(text)
    if m is None:
        return None, text
    st: Status = "firing" if m.group(1).upper() == "FIRING" else "resolved"
    return st, text[m.end() :].lstrip(" :-–—|*_")


def _first_word(rest: str) -> str | None:
    """The first word of a title after its status marker, unless it is a key=value pair."""
    words = rest.strip().strip("*_").split()
    if not words or "=" in words[0]:
        return None
    w = words[0].strip("*_`,()[]")
    return w or None


def _section_marker(text: str) -> Status | None:
    """``**Firing**``, ``*Alerts Firing:*``, ``Resolved`` on a line of its own."""
    t = text.strip().strip("*_#").strip().rstrip(":").strip().strip("*_").strip().lower()
    t = re.sub(r"^\[\d+\]\s*", "", t)
    if t in ("firing", "alerts firing", "firing alerts"):
        return "firing"
    if t in ("resolved", "alerts resolved", "resolved alerts"):
        return "resolved"
    return None


def _classify(
    key: str,
    raw_value: str,
    labels: dict[str, str],
    annotations: dict[str, str],
    *,
    lower_only: bool = False,
) -> None:
    """Put ``key: value`` where it belongs: a label, an annotation, or nowhere."""
    k = key.strip().strip("*_").strip()
    lk = k.lower().replace(" ", "_")
    value = _clean_value(raw_value)
    if not value:
        return
    if lk in _ANNOTATION_KEYS:
        annotations.setdefault(_ANNOTATION_KEYS[lk], value)
        return
    if lk in ("alert", "alert_name", "alertname"):
        sev = _SEV_SUFFIX.match(_clean_line(raw_value).strip())
        if sev is not None:  # "*Alert:* summary - `page`"
            labels.setdefault("severity", _clean_value(sev.group(2)))
            value = _clean_value(sev.group(1))
        if _ALERTNAME.fullmatch(value):
            labels.setdefault("alertname", value)
        elif lk == "alert":
            annotations.setdefault("summary", value)
        return
    if lk == "severity":
        labels.setdefault("severity", value)
        return
    if k != lk and (lower_only or not k.islower()):
        return  # "Started", "Value", "Details": prose headings, not labels
    if _LABEL_NAME.fullmatch(k):
        labels.setdefault(k, value)


def _fallback_status(section_statuses: set[Status], colours: list[str]) -> Status:
    """Status from the Firing/Resolved sections, else the colour; firing by default."""
    if section_statuses:
        return "firing" if "firing" in section_statuses else "resolved"
    if any(c in _RESOLVED_COLOURS for c in colours) and not any(c in _FIRING_COLOURS for c in colours):
        return "resolved"
    return "firing"


def _intersection(maps: list[dict[str, str]]) -> dict[str, str]:
    if not maps:
        return {}
    out = dict(maps[0])
    for m in maps[1:]:
        out = {k: v for k, v in out.items() if m.get(k) == v}
    return out
