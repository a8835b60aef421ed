"""The one jinja2 environment: StrictUndefined, autoescape for HTML, ``tojson`` for
every value that lands in JSON, ``esc`` for every value that lands in Slack mrkdwn.
A template error fails loudly."""

from __future__ import annotations

import json
from datetime import datetime
from functools import cache
from importlib import resources
from typing import Any

import jinja2

from bot.diagnosis.money import format_minor
from bot.render.mrkdwn import esc, link


def _clip(value: object, limit: int) -> str:
    """Shorten text to ``limit`` characters at a word boundary, marking the cut."""
    s = str(value)
    if len(s) <= limit:
        return s
    cut = s[: max(0, limit - 1)]
    space = cut.rfind(" ")
    if space > limit * 0.6:
        cut = cut[:space]
    return cut.rstrip() + "…"


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else "—"


def _tojson(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


@cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(resources.files("bot.templates"))),
        undefined=jinja2.StrictUndefined,
        autoescape=jinja2.select_autoescape(enabled_extensions=("html", "html.j2"), default_for_string=False),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
    )
    env.filters["tojson"] = _tojson
    env.filters["clip"] = _clip
    env.filters["money"] = lambda amount, currency=None: format_minor(int(amount), currency)
    env.filters["when"] = _when
    # Slack mrkdwn: every mrkdwn value of templates/slack/ goes through ``esc`` (bot.render.mrkdwn)
    env.filters["esc"] = esc
    env.filters["link"] = link
    return env


def render(name: str, **context: Any) -> str:
    return environment().get_template(name).render(**context)


def render_json(name: str, **context: Any) -> Any:
    """Render a JSON template and parse it; a template that yields bad JSON raises."""
    text = render(name, **context)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"template {name} rendered invalid JSON: {exc}") from exc
