"""A whole retention run — incidents (``retention``), then the bookkeeping tables
(``retention_tables``) — for ``recon retention`` (by hand or the Helm CronJob) and for the
background task of ``recon serve`` (``RECON_RETENTION_INTERVAL_H``; 0, the default, is off).

One run at a time across every replica and the CronJob: a run takes a PostgreSQL
session advisory lock without waiting, and a run that finds it taken does nothing (the
other one is doing the work). The lock goes with its connection, so a process that dies
mid-run never leaves it held. A dry run takes no lock and deletes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg

from bot.errors import ReconError, StoreError
from bot.report.retention import PurgeResult, purge, retention_days
from bot.report.retention_tables import SweepResult, TablePolicy, count, sweep
from bot.sqlfiles import Queries
from bot.store.db import Pool
from bot.store.jobs import JobQueue

log = logging.getLogger(__name__)
Q = Queries("bot.report", "sql")
RETENTION_LOCK_KEY = 0x7265636F6E5F7274  # b"recon_rt": one retention run at a time
_DB_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError)
FIRST_RUN_AFTER_S = 60.0  # the serve task's first run, a little after start-up


@dataclass(frozen=True, slots=True)
class RetentionRun:
    incidents: PurgeResult
    tables: SweepResult


@contextlib.asynccontextmanager
async def retention_lock(pool: Pool) -> AsyncIterator[bool]:
    """Whether this run got the lock (held until the block ends)."""
    try:
        async with pool.acquire() as conn:
            got = bool(await conn.fetchval(Q["retention_try_lock"], RETENTION_LOCK_KEY))
            try:
                yield got
            finally:
                if got:
                    with contextlib.suppress(*_DB_ERRORS):
                        await conn.fetchval(Q["retention_unlock"], RETENTION_LOCK_KEY)
    except _DB_ERRORS as exc:
        raise StoreError(f"retention lock: {exc}") from exc



async def run_retention(pool: Pool, settings: Any, *, days: int | None = None, dry_run: bool = False,
                        now: datetime | None = None) -> RetentionRun | None:
    """One run; ``None`` when another run holds the lock (nothing done)."""
    now = now or datetime.now(UTC)
    days = days if days is not None else retention_days(settings)
    policy = TablePolicy.from_settings(settings)
    if dry_run:
        incidents = await purge(pool, days=days, now=now, dry_run=True)
        return RetentionRun(incidents, await count(pool, policy, now=now))
    async with retention_lock(pool) as got:
        if not got:
            return None
        incidents = await purge(pool, days=days, now=now)
        tables = await sweep(pool, policy, now=now)
    await JobQueue(pool).compact_counts()
    return RetentionRun(incidents, tables)


async def retention_loop(pool: Pool, settings: Any, stop: asyncio.Event, *,
                         first_after_s: float = FIRST_RUN_AFTER_S,
                         on_run: Callable[[RetentionRun | None], None] | None = None) -> None:
    """``recon serve``'s task: a run a little after start-up, then every
    ``RECON_RETENTION_INTERVAL_H`` hours, until ``stop``; logs what each run removed
    (``on_run`` sees each run's result: ``None`` when another process held the lock)."""
    every_s = float(settings.retention_interval_h) * 3600.0
    if every_s <= 0:
        return
    wait_s = min(first_after_s, every_s)
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), wait_s)
        if stop.is_set():
            return
        wait_s = every_s
        try:
            run = await run_retention(pool, settings)
        except ReconError as exc:
            log.error("retention run failed; trying again in %.1f h: %s", every_s / 3600, exc)
            continue
        except Exception:  # the task must outlive a bug in one run, as the prompt sweeper does
            log.exception("retention run failed; trying again in %.1f h", every_s / 3600)
            continue
        if on_run is not None:
            on_run(run)
        if run is None:
            log.info("retention: another process is running it; skipped")
        else:
            log.info("retention: removed %d incident(s); rows per table: %s", len(run.incidents.removed),
                     ", ".join(f"{t} {n}" for t, n in {**run.incidents.counts, **run.tables.counts}.items()))


__all__ = ["RETENTION_LOCK_KEY", "RetentionRun", "retention_lock", "retention_loop", "run_retention"]
