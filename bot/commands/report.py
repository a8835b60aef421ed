"""``recon report INCIDENT --format md|html [--output FILE] [--link]``: an incident's report
from the store, as Markdown (deterministic, diffable) or as the self-contained HTML page.
Also ``report_link``: the signed link the bot puts in Slack messages.

Wiring (bot/cli.py): ``report.add_parser(sub)`` in ``build_parser`` and
``if args.command == "report": return report.run(settings, args)`` in ``main``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from bot.errors import BadInput
from bot.fsutil import write_atomic
from bot.report.data import load_report
from bot.report.links import report_link
from bot.report.render import render_html, render_markdown
from bot.report.tokens import INCIDENT_ID_RE


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """``recon report`` on the CLI's subparsers."""
    p: argparse.ArgumentParser = sub.add_parser(
        "report", help="an incident's report as Markdown or HTML (and its signed link)",
        description="Write an incident's report: the timeline, findings, customer impact, usage against "
                    "ledger, evidence (before/after), approvals and freezes. Markdown is deterministic "
                    "(no rendering time), for tickets and diffs; HTML is the page the bot links to.\n\n"
                    "examples:\n  recon report INC-20261120-a1b2c3 --format md\n"
                    "  recon report INC-20261120-a1b2c3 --format html --output report.html\n"
                    "  recon report INC-20261120-a1b2c3 --link      the signed URL (needs RECON_PUBLIC_URL)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("incident_id", metavar="INCIDENT", help="the incident id, INC-YYYYMMDD-xxxxxx")
    p.add_argument("--format", choices=("md", "html"), default="md", help="md (default) or html")
    p.add_argument("--output", "-o", type=Path, metavar="FILE", help="write to FILE instead of stdout")
    p.add_argument("--link", action="store_true",
                   help="print the signed, expiring link to the report page instead (RECON_PUBLIC_URL)")
    return p


def run(settings: Any, args: argparse.Namespace) -> int:
    """``recon report``: 0 written; 2 bad input or unknown incident; 1 store failure."""
    return asyncio.run(_run(settings, args))


async def _run(settings: Any, args: argparse.Namespace) -> int:
    from bot.store.opening import open_store

    incident_id = args.incident_id.strip()
    if not INCIDENT_ID_RE.fullmatch(incident_id):
        raise BadInput(f"{incident_id[:40]!r} is not an incident id (INC-YYYYMMDD-xxxxxx)")
    store = await open_store(settings, max_size=2)
    try:
        if args.link:
            if await store.get_incident(incident_id) is None:
                raise BadInput(f"no incident {incident_id} in the store")
            text = await report_link(settings, store, incident_id) + "\n"
        else:
            report = await load_report(store.pool, incident_id)
            if report is None:
                raise BadInput(f"no incident {incident_id} in the store")
            text = render_markdown(report) if args.format == "md" else render_html(report)
    finally:
        await store.close()
    if args.output is None:
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        write_atomic(args.output, text)
        print(f"wrote {args.output} ({len(text.encode('utf-8')):,} bytes)", file=sys.stderr)
    return 0




__all__ = ["add_parser", "report_link", "run"]

