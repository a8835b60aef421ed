"""``recon retention [--days N] [--dry-run]``: delete incidents whose last activity is older
than N days (``RECON_RETENTION_DAYS``, 400), except those with an active freeze, with all
they recorded, in one transaction. See ``bot.report.retention`` for the rule.

Wiring (bot/cli.py): ``retention.add_parser(sub)`` in ``build_parser`` and
``if args.command == "retention": return retention.run(settings, args)`` in ``main``.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from bot.report.retention import TABLES, PurgeResult, purge, retention_days


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sub.add_parser(
        "retention", help="delete incidents (and their timeline, evidence, approvals) past retention",
        description="Delete every incident whose last activity (its last change or its latest timeline event) "
                    "is more than N days old, whatever its status, with its runs, timeline, evidence, approval "
                    "prompts and lifted freezes, in one transaction. An incident with an active freeze is "
                    "never deleted. Prints what it removed.\n\n"
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
    print(describe(result))
    return 0


async def _run(settings: Any, days: int, dry_run: bool) -> PurgeResult:
    from bot.store.opening import open_store

    store = await open_store(settings, max_size=2)
    try:
        return await purge(store.pool, days=days, dry_run=dry_run)
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


__all__ = ["add_parser", "describe", "run"]
