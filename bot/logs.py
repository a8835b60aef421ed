"""Logs an operator can follow: JSON lines carrying ``incident_id``, ``correlation_id``
and ``job_id`` when the work has them (``recon serve``), or plain text (the terminal).

The ids travel in context variables: ``log_context(incident_id=..., ...)`` sets them
for everything logged inside it, including in tasks started there.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

_CONTEXT: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar("recon_log_context", default={})  # noqa: B039
FIELDS = ("incident_id", "correlation_id", "job_id", "alert_group", "worker")


@contextlib.contextmanager
def log_context(**values: Any) -> Iterator[None]:
    token = _CONTEXT.set({**_CONTEXT.get(), **{k: v for k, v in values.items() if v is not None}})
    try:
        yield
    finally:
        _CONTEXT.reset(token)


def bind(**values: Any) -> None:
    """Add ids to the current context (for the rest of this task)."""
    _CONTEXT.set({**_CONTEXT.get(), **{k: v for k, v in values.items() if v is not None}})


class ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        for k, v in _CONTEXT.get().items():
            setattr(record, k, v)
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for k in FIELDS:
            v = getattr(record, k, None)
            if v is not None:
                doc[k] = v
        if record.exc_info:
            doc["error"] = self.formatException(record.exc_info)
        return json.dumps(doc, ensure_ascii=False, default=str)


def setup(level: int, fmt: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(ContextFilter())
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.addHandler(handler)
    root.setLevel(level)
    for noisy in ("httpx", "httpcore", "asyncio", "aiohttp.access", "slack_sdk", "slack_bolt", "recon.bolt"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
