"""``recon verify INCIDENT``: re-run the checks over an incident's scope, record the
"after" evidence, evaluate the four recovery criteria, mark it recovered if they hold."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from typing import Any

from bot.commands.diagnose import export_source, parse_until
from bot.errors import BadInput
from bot.export.request import GivenExport
from bot.flows.followup_tickets import enqueue_after_verify
from bot.flows.verify import verify
from bot.render import terminal
from bot.render.slack import blocks_to_text, verification_message
from bot.settings import Settings
from bot.slack.commands import INCIDENT_RE
from bot.store.jobs import JobQueue
from bot.wiring import open_sources

EXIT_RECOVERED, EXIT_NOT_RECOVERED, EXIT_INCOMPLETE = 0, 4, 3


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sub.add_parser(
        "verify", help="re-run the checks over an incident's scope: recovered or not",
        description="Re-run the checks over the incident's scope, record the 'after' evidence, and evaluate the "
                    "runbook's four recovery criteria. Criterion 1 (the usage listing/export separates allocation "
                    "from app_runtime) needs a usage export covering the incident's org and months: --export "
                    "FILE, or BILLING_EXPORT_URL; without one it is 'not verified' and the incident is not "
                    "recovered. Exit 0: recovered (the incident is marked so); 4: not recovered; 3: a source was "
                    "unavailable; 2: bad input (a malformed export: nothing is recorded).",
        epilog="examples:\n  recon verify INC-20261120-abc123 --export usage.csv\n"
               "  recon verify INC-20261120-abc123 --json --export - < usage.csv",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("incident_id", metavar="INCIDENT")
    p.add_argument("--json", action="store_true", help="print the verification as JSON")
    p.add_argument("--until", metavar="TIMESTAMP", help="end the window at this RFC 3339 time instead of now")
    p.add_argument("--evidence", metavar="DIR", help="offline evidence folder (as for diagnose)")
    p.add_argument("--export", metavar="FILE",
                   help="the customer's usage export (CSV; '-' reads standard input) covering the incident's org "
                        "and months: recovery criterion 1 is verified only with one (or with BILLING_EXPORT_URL)")
    return p


async def run(settings: Settings, args: argparse.Namespace) -> int:
    if not INCIDENT_RE.fullmatch(args.incident_id):
        raise BadInput(f"{args.incident_id!r} is not an incident id like INC-20261120-abc123")
    from pathlib import Path

    from bot.store.opening import open_store

    out = sys.stderr if args.json else sys.stdout
    given = None
    if args.export is not None:
        source, origin = export_source(args.export)
        given = GivenExport(source, origin, settings.export_max_bytes)
    store = await open_store(settings, max_size=4)
    job = None
    try:
        async with open_sources(settings, Path(args.evidence) if args.evidence else None) as sources:
            now = parse_until(args.until) if args.until else datetime.now(UTC)
            v = await verify(store=store, sources=sources, incident_id=args.incident_id, now=now,
                             actor="cli", row_cap=settings.evidence_row_cap,
                             observers=[terminal.TerminalProgress(out)], given=given)
        job = await enqueue_after_verify(JobQueue(store.pool), settings, args.incident_id, v.run.run_id,
                                         v.recovered, v.after, None, None)
    finally:
        await store.close()
    if job is not None:
        print(f"follow-up tickets: job {job.job_id} queued for `recon serve`", file=sys.stderr)
    doc = v.as_dict()
    if args.json:
        print(json.dumps(doc, indent=2))
    else:
        print(blocks_to_text(verification_message(doc).blocks), file=out)
    if not v.after.complete:
        return EXIT_INCOMPLETE
    return EXIT_RECOVERED if v.recovered else EXIT_NOT_RECOVERED
