"""``recon retention [--days N] [--dry-run]``: delete incidents whose last activity is older
than N days (``RECON_RETENTION_DAYS``, 400), except those with an active freeze, with all
they recorded, in one transaction (``bot.report.retention``); then finished jobs, Slack
event ids and posts, alert groups with their notifications, and storms past their own
retention, in batches (``bot.report.retention_tables``). One run at a time
(``bot.report.retention_schedule``); the Helm CronJob runs this command.

Wiring (bot/cli.py): ``retention.add_parser(sub)`` in ``build_parser`` and
``if args.command == "retention": return retention.run(settings, args)`` in ``main``.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from bot.report.retention import TABLES, PurgeResult, retention_days
from bot.report.retention_schedule import RetentionRun, run_retention
from bot.report.retention_tables import TABLES as BOOKKEEPING
from bot.report.retention_tables import SweepResult


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sub.add_parser(
        "retention", help="delete incidents, finished jobs and Slack/alert bookkeeping past retention",
        description="Delete every incident whose last activity (its last change or its latest timeline event) "
                    "is more than N days old, whatever its status, with its runs, timeline, evidence, approval "
                    "prompts and lifted freezes, in one transaction. An incident with an active freeze is "
                    "never deleted. Then, in batches: jobs done or failed RECON_RETENTION_JOBS_DAYS (14) ago, "
                    "Slack event ids RECON_RETENTION_SLACK_EVENTS_DAYS (7), Slack posts nothing needs "
                    "RECON_RETENTION_SLACK_POSTS_DAYS (30), resolved alert groups with their notifications "
                    "and storms RECON_RETENTION_ALERTS_DAYS (30); never what an open incident, a queued or "
                    "running job, a firing alert group, an active freeze or an open approval needs. "
                    "Prints what it removed, per table.\n\n"
                    "examples:\n  recon retention --dry-run      what would go, nothing deleted\n"
                    "  recon retention --days 365",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--days", type=int, metavar="N",
                   help="keep incidents active in the last N days (default RECON_RETENTION_DAYS, 400)")
    p.add_argument("--dry-run", action="store_true", help="say what would be deleted; delete nothing")
    return p


def run(settings: Any, args: argparse.Namespace) -> int:
    from bot.errors import BadInput

    days = args.days if args.days is not None else retention_days(settings)
    if days < 1:
        raise BadInput("--days must be at least 1")
    result = asyncio.run(_run(settings, days, args.dry_run))
    if result is None:
        print("retention: another retention run holds the lock (recon serve's task or a CronJob); nothing done")
        return 0
    print(describe(result.incidents))
    print(describe_tables(result.tables))
    return 0


async def _run(settings: Any, days: int, dry_run: bool) -> RetentionRun | None:
    from bot.store.opening import open_store

    store = await open_store(settings, max_size=2)
    try:
        return await run_retention(store.pool, settings, days=days, dry_run=dry_run)
    finally:
        await store.close()


def describe(result: PurgeResult) -> str:
    verb = "would remove" if result.dry_run else "removed"
    lines = [f"retention {result.days} days: incidents inactive since before {result.cutoff:%Y-%m-%d %H:%M} UTC"
             + (" (dry run: nothing deleted)" if result.dry_run else "")]
    lines.append(f"{verb} {len(result.removed)} incident(s)")
    for p in result.removed:
        lines.append(f"  {p.incident_id}  {p.status:<9}  last activity {p.last_activity:%Y-%m-%d %H:%M} UTC")
    lines.append("rows per table:")
    for table in TABLES:
        lines.append(f"  {table:<17} {result.counts.get(table, 0):>8}")
    if result.kept_frozen:
        lines.append(f"kept {len(result.kept_frozen)} incident(s) past retention with an active freeze: "
                     + ", ".join(result.kept_frozen))
    return "\n".join(lines)


def describe_tables(result: SweepResult) -> str:
    verb = "would remove" if result.dry_run else "removed"
    lines = [f"bookkeeping past retention ({verb}, rows per table):"]
    for table in BOOKKEEPING:
        cutoff = result.cutoffs[table]
        lines.append(f"  {table:<19} {result.counts.get(table, 0):>8}  (before {cutoff:%Y-%m-%d %H:%M} UTC)")
    return "\n".join(lines)


__all__ = ["add_parser", "describe", "describe_tables", "run"]
