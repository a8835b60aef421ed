"""Slack mrkdwn from untrusted text: the one escaping helper of every template and
renderer (``templating`` registers ``esc`` and ``link`` as filters).

Slack reads ``&``, ``<`` and ``>`` as control characters of mrkdwn: ``<!channel>``,
``<!subteam^S1>``, ``<@U1>`` and ``<https://x|label>`` are markup, so text from an
alert label, a Slack message or a command must be escaped (``&amp;``, ``&lt;``,
``&gt;``) before it joins a message; ``@here`` or ``*bold*`` written as text pings
nobody and links nowhere. A link's url must be http(s) with none of ``|<>`` or
whitespace, and its label is escaped; anything else is shown as its escaped label.

``Mrkdwn`` marks text recon built from escaped parts (its own links and mentions):
``esc`` passes it unchanged, and escapes any other ``str`` whole. A template therefore
applies ``| esc`` to every mrkdwn value: a renderer that forgot to mark (or to escape)
a value shows markup as text instead of letting it through. ``plain_text`` objects
(headers, buttons) are not parsed by Slack and are not escaped.
"""

from __future__ import annotations

import re

MAX_URL = 2000
_URL = re.compile(r"https?://[^\s|<>\x00-\x1f\x7f]+", re.IGNORECASE)
_USER = re.compile(r"[UW][A-Z0-9]{2,30}")


class Mrkdwn(str):
    """Text that is already mrkdwn: built by recon from escaped parts."""

    __slots__ = ()


def esc(value: object) -> Mrkdwn:
    """``value`` as literal text in mrkdwn (a ``Mrkdwn`` is returned unchanged)."""
    if isinstance(value, Mrkdwn):
        return value
    return Mrkdwn(str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;"))


def safe_url(url: object) -> str | None:
    """``url`` if it can go into ``<url|label>``: http(s), at most ``MAX_URL``
    characters, no ``|``, ``<``, ``>``, whitespace or control characters."""
    if not isinstance(url, str) or len(url) > MAX_URL or not _URL.fullmatch(url):
        return None
    return url


def link(url: object, label: object) -> Mrkdwn:
    """``<url|label>``, the label escaped; an unsafe or missing url: the label alone."""
    safe = safe_url(url) if url else None
    return Mrkdwn(f"<{safe}|{esc(label)}>") if safe else esc(label)


def mention(user_id: object) -> Mrkdwn:
    """``<@U…>`` for a Slack user id; anything else is escaped text."""
    s = str(user_id)
    return Mrkdwn(f"<@{s}>") if _USER.fullmatch(s) else esc(s)


def mrkdwn(text: str) -> Mrkdwn:
    """Mark text recon wrote (and escaped the untrusted parts of) as mrkdwn."""
    return Mrkdwn(text)
