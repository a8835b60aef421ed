"""What the billing reader's queries are given and what it says about them: id lists as
given, disjoint partitions for concurrent screening, samples of ids for the evidence
record, and a database URL described for people (with the password to scrub)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from urllib.parse import unquote, urlsplit

import asyncpg

from bot.diagnosis.model import LedgerEntry, UsageRecord
from bot.sources.protocols import Coverage, KnownCredits


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


def screened(kind: str, *cols: Any) -> UsageRecord | LedgerEntry | Coverage:
    """One row of screen_usage: its kind, then each kind's columns side by side."""
    if kind == "usage":
        return UsageRecord(*cols[:20])
    if kind == "ledger":
        return LedgerEntry(*cols[20:33])
    if kind == "coverage":
        return coverage(*cols[33:39])
    raise ValueError(f"screen_usage: unknown kind of row {kind!r}")


def known_reversals(entries: Sequence[LedgerEntry], usage_record_ids: set[str],
                    known: KnownCredits) -> list[LedgerEntry]:
    """The credits of ``known`` that ledger_for_usage would have found itself: in the
    (org_id, project_id) of an entry naming one of the rows, posted at or after the
    earliest of those entries there and not before ``known.since``, reversing one of
    them, not already among ``entries`` (the query's walk of those projects stopped where
    ``known`` begins)."""
    scopes: dict[tuple[str, str], tuple[datetime, set[str]]] = {}
    for e in entries:
        if e.usage_record_id is None or e.usage_record_id not in usage_record_ids:
            continue
        key = (e.org_id, e.project_id)
        since, ids_here = scopes.get(key, (e.posted_at, set()))
        ids_here.add(e.ledger_entry_id)
        scopes[key] = (min(since, e.posted_at), ids_here)
    have = {e.ledger_entry_id for e in entries}
    out: list[LedgerEntry] = []
    for c in known.credits:
        scope = scopes.get((c.org_id, c.project_id))
        if (scope is None or c.ledger_entry_id in have or c.direction != "credit"
                or c.posted_at < max(scope[0], known.since) or c.reverses_entry_id not in scope[1]
                or (c.usage_record_id is not None and c.usage_record_id in usage_record_ids)):
            continue
        have.add(c.ledger_entry_id)
        out.append(c)
    return out


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
