"""Which channel an alert group's thread goes to. Pure.

``RECON_ALERT_ROUTES`` is a JSON list (inline, or ``@/path/to/routes.json``) of rules,
first match wins::

    [{"name": "ledger-pages", "match": {"alertname": "UsageLedgerMismatch", "severity": "page"},
      "channel": "C0LEDGER"},
     {"name": "metering", "match": {"alertname": "~AppRuntime.*"}, "channel": "C0METERING"}]

A match value is an exact label value, or ``~regex`` (fully anchored, like Alertmanager's
``=~``). A rule without ``match`` matches everything. No rule matching: the group goes to
``RECON_ALERT_CHANNEL``; with that unset it is stored but not posted, and the log says why.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.errors import ConfigError


@dataclass(frozen=True, slots=True)
class Route:
    name: str
    channel: str
    match: tuple[tuple[str, str | re.Pattern[str]], ...]

    def matches(self, labels: dict[str, str]) -> bool:
        for key, want in self.match:
            have = labels.get(key)
            if have is None:
                return False
            if isinstance(want, re.Pattern):
                if want.fullmatch(have) is None:
                    return False
            elif have != want:
                return False
        return True


@dataclass(frozen=True, slots=True)
class RoutingTable:
    routes: tuple[Route, ...]
    default_channel: str | None

    def choose(self, labels: dict[str, str]) -> tuple[str | None, str]:
        """``(channel, why)``: the channel (None: not posted) and the route's name or reason."""
        for r in self.routes:
            if r.matches(labels):
                return r.channel, r.name
        if self.default_channel:
            return self.default_channel, "default (RECON_ALERT_CHANNEL)"
        return None, "no route matched and RECON_ALERT_CHANNEL is unset"


def _rule(i: int, doc: Any) -> Route:
    if not isinstance(doc, dict):
        raise ConfigError(f"RECON_ALERT_ROUTES[{i}] must be an object")
    channel = doc.get("channel")
    if not isinstance(channel, str) or not channel:
        raise ConfigError(f"RECON_ALERT_ROUTES[{i}].channel must be a channel id")
    match = doc.get("match", {})
    if not isinstance(match, dict):
        raise ConfigError(f"RECON_ALERT_ROUTES[{i}].match must be an object of label: value")
    pairs: list[tuple[str, str | re.Pattern[str]]] = []
    for k, v in match.items():
        if not isinstance(v, str):
            raise ConfigError(f"RECON_ALERT_ROUTES[{i}].match.{k} must be a string")
        if v.startswith("~"):
            try:
                pairs.append((k, re.compile(v[1:])))
            except re.error as exc:
                raise ConfigError(f"RECON_ALERT_ROUTES[{i}].match.{k}: bad regex: {exc}") from None
        else:
            pairs.append((k, v))
    return Route(name=str(doc.get("name") or f"route {i}"), channel=channel, match=tuple(pairs))


def load_routes(spec: str | None, default_channel: str | None) -> RoutingTable:
    if not spec or not spec.strip():
        return RoutingTable((), default_channel)
    text = spec.strip()
    if text.startswith("@"):
        try:
            text = Path(text[1:]).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"RECON_ALERT_ROUTES: cannot read {text[1:]}: {exc}") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"RECON_ALERT_ROUTES is not JSON: {exc}") from None
    if not isinstance(doc, list):
        raise ConfigError("RECON_ALERT_ROUTES must be a JSON list of rules")
    return RoutingTable(tuple(_rule(i, r) for i, r in enumerate(doc)), default_channel)
