"""Retention: incidents, and everything recorded about them, are kept ``RECON_RETENTION_DAYS``
(400 by default) after their last activity, then deleted.

The rule (one place, ``bot/report/sql/retention_candidates.sql``):

- an incident's **last activity** is the later of its ``updated_at`` and its latest
  timeline event; it is **removed** when that is more than N days ago — whatever its
  status (an incident nobody touched for N days is over, even if nobody closed it);
- an incident with an **active freeze** is never removed, whatever its age or status:
  billing tools still honour the freeze, and the incident is its record. Lift it first.

Removed with it: its diagnosis runs, timeline events, evidence, approval prompts with
their votes and audit events, and its (lifted) freezes with their scopes. Jobs and alert
groups that named it stay, with ``incident_id`` set to null (their own foreign keys).

It all happens in one transaction that first does ``SET LOCAL recon.allow_purge = 'on'``
(the append-only triggers of migrations 001 and 004 let DELETE through only then, and only
in that transaction). The incidents are locked (``FOR UPDATE``) before the freeze check,
so a freeze approved at the same moment either commits first (and keeps the incident) or
waits and then fails on its foreign key. ``dry_run`` runs the very same statements and
rolls back, so the counts it reports are exactly what a real run would delete.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg

from bot.errors import StoreError
from bot.sqlfiles import Queries
from bot.store.db import Pool

log = logging.getLogger(__name__)
Q = Queries("bot.report", "sql")
DEFAULT_RETENTION_DAYS = 400
_DB_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError)

# children before parents
TABLES: tuple[str, ...] = (
    "freeze_scopes",
    "freezes",
    "approval_events",
    "approval_votes",
    "approval_prompts",
    "evidence",
    "timeline_events",
    "diagnosis_runs",
    "incidents",
)


@dataclass(frozen=True, slots=True)
class Purged:
    incident_id: str
    status: str
    last_activity: datetime


@dataclass(frozen=True, slots=True)
class PurgeResult:
    cutoff: datetime
    days: int
    dry_run: bool
    removed: tuple[Purged, ...]
    kept_frozen: tuple[str, ...]  # old enough, but an active freeze keeps them
    counts: dict[str, int]  # rows per table (TABLES order)

    @property
    def incident_ids(self) -> list[str]:
        return [p.incident_id for p in self.removed]


class _Rollback(Exception):
    pass


def retention_days(settings: object) -> int:
    """``RECON_RETENTION_DAYS`` (``settings.retention_days``), 400 by default."""
    days = getattr(settings, "retention_days", None)
    return int(days) if days is not None else DEFAULT_RETENTION_DAYS


async def purge(pool: Pool, *, days: int, now: datetime | None = None, dry_run: bool = False) -> PurgeResult:
    """Delete the incidents past retention (see the module doc); ``dry_run`` rolls back."""
    if days < 1:
        raise ValueError("retention must be at least 1 day")
    cutoff = (now or datetime.now(UTC)) - timedelta(days=days)
    removed: list[Purged] = []
    kept: list[str] = []
    counts: dict[str, int] = dict.fromkeys(TABLES, 0)
    try:
        async with pool.acquire() as conn:
            try:
                async with conn.transaction():
                    await conn.execute(Q["retention_allow_purge"])
                    rows = await conn.fetch(Q["retention_candidates"], cutoff)
                    ids = [r["incident_id"] for r in rows]
                    held = {r["incident_id"] for r in await conn.fetch(Q["retention_held"], ids)} if ids else set()
                    kept = [i for i in ids if i in held]
                    removed = [Purged(r["incident_id"], r["status"], r["last_activity"]) for r in rows
                               if r["incident_id"] not in held]
                    doomed = [p.incident_id for p in removed]
                    if doomed:
                        for table in TABLES:
                            counts[table] = int(await conn.fetchval(Q[f"retention_delete_{table}"], doomed))
                    if dry_run:
                        raise _Rollback
            except _Rollback:
                pass
    except _DB_ERRORS as exc:
        raise StoreError(f"retention purge failed (nothing was deleted): {exc}") from exc
    if not dry_run and removed:
        log.info("retention: removed %d incident(s) older than %s", len(removed), cutoff.isoformat())
    return PurgeResult(cutoff=cutoff, days=days, dry_run=dry_run, removed=tuple(removed), kept_frozen=tuple(kept),
                       counts=counts)


__all__ = ["DEFAULT_RETENTION_DAYS", "TABLES", "PurgeResult", "Purged", "purge", "retention_days"]
