"""Retention of the bot's bookkeeping: Slack event ids and posts, alert notifications,
alert groups and storms, finished jobs. Incidents have their own rule (``retention``).

Each table has a retention in days (settings, README "Retention"):

- ``slack_events`` (``RECON_RETENTION_SLACK_EVENTS_DAYS``, 7): the dedup of Slack's
  retries, which come within minutes;
- ``slack_posts`` (``RECON_RETENTION_SLACK_POSTS_DAYS``, 30): a post older than that
  goes once nothing needs it — it is not in an incident's thread, its job is finished and
  belongs to no incident, no job of its namespace is queued or running, its alert group
  has moved on from that generation (or is gone) and its storm is gone. A post in an
  incident's thread lives as long as the incident;
- ``alert_notifications`` and ``alert_groups`` (``RECON_RETENTION_ALERTS_DAYS``, 30): a
  handled notification (already shown) received before the cutoff goes; a group resolved
  and last heard of before it goes with its remaining notifications, unless a job for it
  or its storm is queued or running, or an incident still needs it (not closed, with an
  active freeze or an open approval prompt). A firing group is never deleted;
- ``alert_storms`` (the same days): a storm last joined before the cutoff that no group
  names and whose job is neither queued nor running;
- ``jobs`` (``RECON_RETENTION_JOBS_DAYS``, 14): done or failed before the cutoff, unless
  its incident still needs it. Queued and running jobs are never touched. A job's Slack
  posts and diagnosis runs stay (their ``job_id`` is set to null).

Every table is emptied in bounded batches (``RECON_RETENTION_BATCH`` rows, oldest first),
each one statement and so its own short transaction; rows another transaction holds are
skipped (``SKIP LOCKED``) until the next run, and the rule is checked again on each locked
row, so a group that fires again or a job that is retried meanwhile stays. The order
(posts before the groups and jobs that keep them) makes a dry run's counts, taken with
the same rules, what a real run removes — except storms whose last groups the same run
removes, which a dry run does not count (the next run removes them).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from bot.errors import StoreError
from bot.sqlfiles import Queries
from bot.store.db import Pool

log = logging.getLogger(__name__)
Q = Queries("bot.report", "sql")
_DB_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError)

# in the order a run deletes them (see the module doc)
TABLES: tuple[str, ...] = (
    "slack_events",
    "slack_posts",
    "alert_notifications",
    "alert_groups",
    "alert_storms",
    "jobs",
)


@dataclass(frozen=True, slots=True)
class TablePolicy:
    """Days kept per table, and the batch size."""

    jobs_days: int = 14
    slack_events_days: int = 7
    slack_posts_days: int = 30
    alerts_days: int = 30
    batch: int = 1000

    @classmethod
    def from_settings(cls, settings: Any) -> TablePolicy:
        return cls(jobs_days=settings.retention_jobs_days, slack_events_days=settings.retention_slack_events_days,
                   slack_posts_days=settings.retention_slack_posts_days, alerts_days=settings.retention_alerts_days,
                   batch=settings.retention_batch)

    def days(self, table: str) -> int:
        return {"slack_events": self.slack_events_days, "slack_posts": self.slack_posts_days,
                "jobs": self.jobs_days}.get(table, self.alerts_days)

    def cutoffs(self, now: datetime) -> dict[str, datetime]:
        for name in ("jobs_days", "slack_events_days", "slack_posts_days", "alerts_days", "batch"):
            if getattr(self, name) < 1:
                raise ValueError(f"retention {name} must be at least 1")
        return {t: now - timedelta(days=self.days(t)) for t in TABLES}


@dataclass(slots=True)
class SweepResult:
    dry_run: bool
    cutoffs: dict[str, datetime]
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TABLES, 0))
    batches: int = 0

    @property
    def total(self) -> int:
        return sum(self.counts.values())


async def count(pool: Pool, policy: TablePolicy, *, now: datetime | None = None) -> SweepResult:
    """What ``sweep`` would delete, per table, deleting nothing."""
    result = SweepResult(dry_run=True, cutoffs=policy.cutoffs(now or datetime.now(UTC)))
    c = result.cutoffs
    try:
        result.counts["slack_events"] = int(await pool.fetchval(Q["retention_count_slack_events"], c["slack_events"]))
        result.counts["slack_posts"] = int(await pool.fetchval(Q["retention_count_slack_posts"], c["slack_posts"]))
        groups, notes = await _pair(pool, "retention_count_alert_groups", c["alert_groups"])
        result.counts["alert_groups"], result.counts["alert_notifications"] = groups, notes
        result.counts["alert_storms"] = int(await pool.fetchval(Q["retention_count_alert_storms"], c["alert_storms"]))
        result.counts["jobs"] = int(await pool.fetchval(Q["retention_count_jobs"], c["jobs"]))
    except _DB_ERRORS as exc:
        raise StoreError(f"retention dry run failed: {exc}") from exc
    return result


async def sweep(pool: Pool, policy: TablePolicy, *, now: datetime | None = None) -> SweepResult:
    """Delete what is past retention, table by table, in batches (see the module doc).

    On a database error it stops: what the finished batches deleted stays deleted, and
    the ``StoreError`` says how much that was."""
    result = SweepResult(dry_run=False, cutoffs=policy.cutoffs(now or datetime.now(UTC)))
    try:
        for table in TABLES:
            await _drain(pool, table, result, policy.batch)
    except _DB_ERRORS as exc:
        raise StoreError(f"retention stopped ({_summary(result.counts)} deleted before): {exc}") from exc
    if result.total:
        log.info("retention: deleted %s", _summary(result.counts))
    return result


async def _drain(pool: Pool, table: str, result: SweepResult, batch: int) -> None:
    """Batches of one table until one comes back short (alert groups: their notifications too)."""
    cutoff = result.cutoffs[table]
    while True:
        result.batches += 1
        if table == "alert_groups":
            n, notes = await _pair(pool, "retention_batch_alert_groups", cutoff, batch)
            result.counts["alert_notifications"] += notes
        else:
            n = int(await pool.fetchval(Q[f"retention_batch_{table}"], cutoff, batch))
        result.counts[table] += n
        if n < batch:
            return


async def _pair(pool: Pool, query: str, *args: object) -> tuple[int, int]:
    """The (groups, notifications) row of the alert group queries."""
    row = await pool.fetchrow(Q[query], *args)
    return (int(row["groups"]), int(row["notifications"])) if row is not None else (0, 0)


def _summary(counts: dict[str, int]) -> str:
    return ", ".join(f"{t} {counts.get(t, 0)}" for t in TABLES)


__all__ = ["TABLES", "SweepResult", "TablePolicy", "count", "sweep"]
