"""``recon corrections INCIDENT [--format csv|json] [--verify]``: an incident's ledger
corrections — its approved (sealed) batch with the approvers and the digest, or, when
the latest diagnosis's proposals are not sealed, those proposals. Proposed by recon,
never applied by recon.

Wiring (bot/cli.py): ``corrections.add_parser(sub)`` in ``build_parser`` and
``if args.command == "corrections": return corrections.run(settings, args)`` in ``main``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from bot.diagnosis.corrections import proposal_rows
from bot.errors import BadInput
from bot.render.corrections import corrections_csv, corrections_json
from bot.report.tokens import INCIDENT_ID_RE
from bot.store.corrections import CorrectionBatch, CorrectionStore

EXIT_NOT_VERIFIED = 4


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sub.add_parser(
        "corrections", help="an incident's proposed or approved ledger corrections (never applied by recon)",
        description="Print an incident's ledger corrections: its approved, sealed batch (with the approvers, "
                    "their votes and the batch's sha256), or the latest diagnosis's proposals when they are not "
                    "sealed. recon only proposes them; it never applies them.\n\n"
                    "examples:\n  recon corrections INC-20261120-a1b2c3 > corrections.csv\n"
                    "  recon corrections INC-20261120-a1b2c3 --format json\n"
                    "  recon corrections INC-20261120-a1b2c3 --verify   recompute the sealed digests "
                    "(exit 4 if one differs)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("incident_id", metavar="INCIDENT", help="the incident id, INC-YYYYMMDD-xxxxxx")
    p.add_argument("--format", choices=("csv", "json"), default="csv", help="csv (default) or json")
    p.add_argument("--verify", action="store_true",
                   help="recompute every sealed batch's digest from its stored rows instead")
    return p


def run(settings: Any, args: argparse.Namespace) -> int:
    """0 printed (or verified); 2 bad input or unknown incident; 4 a digest differs; 1 store failure."""
    code, text = asyncio.run(_run(settings, args))
    sys.stdout.buffer.write(text.encode("utf-8"))
    sys.stdout.flush()
    return code


async def corrections_text(store: CorrectionStore, incident_id: str, fmt: str) -> str:
    """The output of ``recon corrections`` (and, for a sealed batch, the uploaded CSV)."""
    batches = await store.batches_of(incident_id)
    latest = await store.latest_run(incident_id)
    batch: CorrectionBatch | None = None
    rows: list[dict[str, Any]] = []
    run_id = latest[0] if latest else None
    proposed = proposal_rows(latest[1].get("corrections") or []) if latest else []
    sealed_run = next((b for b in reversed(batches) if b.run_id == run_id), None) if run_id else None
    if proposed and sealed_run is None:
        rows = proposed
    elif batches:
        batch = sealed_run or batches[-1]
        rows = await store.rows(batch.batch_id)
    if fmt == "json":
        return corrections_json(incident_id, rows, batch, run_id=run_id)
    return corrections_csv(incident_id, rows, batch)


async def _run(settings: Any, args: argparse.Namespace) -> tuple[int, str]:
    from bot.store.opening import open_store

    incident_id = args.incident_id.strip()
    if not INCIDENT_ID_RE.fullmatch(incident_id):
        raise BadInput(f"{incident_id[:40]!r} is not an incident id (INC-YYYYMMDD-xxxxxx)")
    store = await open_store(settings, max_size=2)
    try:
        if await store.get_incident(incident_id) is None:
            raise BadInput(f"no incident {incident_id} in the store")
        cs = CorrectionStore(store.pool)
        if not args.verify:
            return 0, await corrections_text(cs, incident_id, args.format)
        lines, code = [], 0
        for b in await cs.batches_of(incident_id):
            ok = await cs.verify(b)
            code = code if ok else EXIT_NOT_VERIFIED
            lines.append(f"batch {b.batch_id}: sha256 {b.digest} {'verified' if ok else 'DOES NOT MATCH its rows'}")
        return code, "\n".join(lines or [f"incident {incident_id} has no sealed batch"]) + "\n"
    finally:
        await store.close()


__all__ = ["add_parser", "corrections_text", "run"]
