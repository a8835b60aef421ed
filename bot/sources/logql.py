"""The runbook's LogQL, in one place.

The two queries are, literally (platform.md)::

    {service=~"gpuaas-(api|billing-worker|app-runtime-worker|webhook-worker)"} | json | correlation_id="<ID>"
    {service=~"gpuaas-(api|billing-worker|app-runtime-worker)"} | json | app_instance_id="<ID>"

The value is always escaped as a LogQL double-quoted string (Go string-literal
rules: backslash and double quote are escaped, control characters written as
escapes), so no input can change a query's shape. Identifiers are validated before
they get here (``bot.ids``); escaping is the second wall, not the first.

An operator whose platform names its services differently changes ``SERVICES_*``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

SERVICES_BY_CORRELATION = ("api", "billing-worker", "app-runtime-worker", "webhook-worker")
SERVICES_BY_APP_INSTANCE = ("api", "billing-worker", "app-runtime-worker")
SERVICE_PREFIX = "gpuaas-"


def escape_string(value: str) -> str:
    """``value`` as the body of a LogQL double-quoted string literal."""
    out: list[str] = []
    for ch in value:
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return "".join(out)


@dataclass(frozen=True, slots=True)
class LogQuery:
    """A stream selector over services, ``| json``, and one equality label filter."""

    name: str  # "logs_by_correlation_id" | "logs_by_app_instance_id"
    services: tuple[str, ...]
    field: str
    value: str

    @property
    def service_regex(self) -> str:
        return f"{SERVICE_PREFIX}({'|'.join(self.services)})"

    @property
    def logql(self) -> str:
        return (
            f'{{service=~"{escape_string(self.service_regex)}"}} | json | '
            f'{self.field}="{escape_string(self.value)}"'
        )

    def matches_service(self, service: str) -> bool:
        return re.fullmatch(self.service_regex, service) is not None


def by_correlation_id(correlation_id: str) -> LogQuery:
    return LogQuery("logs_by_correlation_id", SERVICES_BY_CORRELATION, "correlation_id", correlation_id)


def by_app_instance_id(app_instance_id: str) -> LogQuery:
    return LogQuery("logs_by_app_instance_id", SERVICES_BY_APP_INSTANCE, "app_instance_id", app_instance_id)
