"""What the billing reader's queries are given and what it says about them: id lists as
given, disjoint partitions for concurrent screening, samples of ids for the evidence
record, and a database URL described for people (with the password to scrub)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from urllib.parse import unquote, urlsplit

import asyncpg

from bot.sources.protocols import Coverage


def describe_url(url: str) -> tuple[str, str | None]:
    """(host/db for people, the password to scrub from messages) of a postgres URL."""
    try:
        parts = urlsplit(url)
        password = unquote(parts.password) if parts.password else None
        host = parts.hostname or ""
        if parts.port:
            host = f"{host}:{parts.port}"
        if not host:  # unix socket: ?host=/path
            for kv in parts.query.split("&"):
                if kv.startswith("host="):
                    host = unquote(kv[5:])
        db = parts.path.lstrip("/") or (parts.username or "")
        return f"{host or 'localhost'}/{db}", password
    except ValueError:
        return "?", None


async def no_reset(conn: asyncpg.Connection) -> None:
    """The pool's reset on release: nothing (an open transaction is rolled back by asyncpg)."""


def coverage(app_instance_id: str, component: str, rows: int, first_hour: datetime, last_hour: datetime,
             hours: list[datetime] | None) -> Coverage:
    return Coverage(app_instance_id, component, rows, first_hour, last_hour, None if hours is None else tuple(hours))


def ids(values: Sequence[str]) -> list[str]:
    """The ids as a list, as given (PostgreSQL ignores duplicates in ``= any``).

    Not sorted nor deduplicated here: a tenant diagnosis passes hundreds of thousands.
    """
    return values if isinstance(values, list) else list(values)


def partition(ids: list[str], parts: int, min_size: int) -> list[list[str]]:
    """The distinct ids in up to ``parts`` contiguous slices of at least ``min_size``
    (one slice, the ids as given, when there are too few to split). No id is in two
    slices: each instance is screened by exactly one query."""
    if parts < 2 or len(ids) < 2 * min_size:
        return [ids]
    distinct = list(dict.fromkeys(ids))
    n = max(1, min(parts, len(distinct) // min_size))
    if n == 1:
        return [distinct]
    size = -(-len(distinct) // n)
    return [distinct[i:i + size] for i in range(0, len(distinct), size)]


def sample(ids: list[str], limit: int = 50) -> list[str] | dict[str, Any]:
    """The ids for the evidence record: all of them, or a count and the first few."""
    if len(ids) <= limit:
        return ids
    return {"count": len(ids), "first": ids[:limit]}
