"""Proposed and sealed corrections as people read them: the prompt's text, the CSV and
the JSON of ``recon corrections`` (the CSV uploaded to the thread is the same bytes)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from typing import Any

from bot.diagnosis.corrections import FIELDS, proposal_rows, totals
from bot.diagnosis.money import format_minor
from bot.render.slack import esc
from bot.store.corrections import CorrectionBatch

FIRST_LINES = 5
CSV_COLUMNS = (*FIELDS, "incident_id", "batch_digest")
NEVER_APPLIED = "proposed by recon; recon never applies them (it never writes to the billing database)"


def line(r: Mapping[str, Any]) -> str:
    target = (f"reverse ledger entry `{esc(str(r.get('reverses_entry_id')))}`" if r.get("action") == "reverse_debit"
              else f"debit usage record `{esc(str(r.get('usage_record_id')))}`")
    return (f"{target} · {format_minor(int(r['amount_minor']), str(r['currency']))} · "
            f"`{esc(str(r.get('org_id')))}/{esc(str(r.get('project_id')))}` · {esc(str(r.get('check')))}")


def prompt_what(scope: Mapping[str, Any]) -> str:
    """The corrections prompt's body: the count, totals per currency and direction, the
    first lines, the link to the full list, and that recon does not apply them."""
    rows = proposal_rows(scope.get("corrections") or [])
    sums = "; ".join(f"{currency}: {n} {'reversal(s) of a debit' if action == 'reverse_debit' else 'new debit(s)'}"
                     f" totalling {format_minor(total, currency)}"
                     for (currency, action), (n, total) in totals(rows).items())
    first = "\n".join(f"• {line(r)}" for r in rows[:FIRST_LINES])
    more = f"\n• … and {len(rows) - FIRST_LINES} more" if len(rows) > FIRST_LINES else ""
    link = scope.get("link")
    full = f"<{link}|the full list in the incident report>" if link else "the full list in the incident report"
    return (f"*{len(rows)} ledger correction(s) proposed* ({sums}):\n{first}{more}\nSee {full} or "
            f"`recon corrections {esc(str(scope.get('incident_id', '')))}`. These are {NEVER_APPLIED}: approving "
            f"seals the batch (sha256 `{str(scope.get('digest', ''))[:16]}…`) for the approved correction "
            "procedure.")


def _cell(v: Any) -> str:
    """A CSV cell; text that a spreadsheet would run as a formula is quoted with a ``'``."""
    if v is None:
        return ""
    if isinstance(v, int):
        return str(v)
    s = str(v)
    return "'" + s if s[:1] in ("=", "+", "-", "@", "\t", "\r") else s


def corrections_csv(incident_id: str, rows: Sequence[Mapping[str, Any]], batch: CorrectionBatch | None) -> str:
    """The CSV of ``recon corrections --format csv`` and of the file uploaded to the thread."""
    if batch is None:
        status = "NOT approved: the latest diagnosis's proposals, not sealed"
    else:
        voters = ", ".join(f"{u} ({v})" for u, v in sorted(batch.votes.items()))
        status = (f"approved batch {batch.batch_id} of diagnosis run {batch.run_id}, sealed "
                  f"{batch.sealed_at:%Y-%m-%dT%H:%M:%SZ} by {', '.join(batch.approved_by)}; votes: {voters}; "
                  f"sha256 {batch.digest}")
    out = io.StringIO()
    out.write(f"# recon corrections for incident {incident_id}: {NEVER_APPLIED}. {status}\n")
    w = csv.writer(out, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    digest = batch.digest if batch is not None else ""
    for r in proposal_rows(rows):
        w.writerow([_cell(r[k]) for k in FIELDS] + [_cell(incident_id), digest])
    return out.getvalue()


def corrections_json(incident_id: str, rows: Sequence[Mapping[str, Any]], batch: CorrectionBatch | None,
                     *, run_id: int | None) -> str:
    doc: dict[str, Any] = {"incident_id": incident_id, "note": NEVER_APPLIED,
                           "status": "approved" if batch is not None else "proposed",
                           "run_id": batch.run_id if batch is not None else run_id,
                           "corrections": proposal_rows(rows)}
    if batch is not None:
        doc.update(batch_id=batch.batch_id, digest=batch.digest, approved_by=batch.approved_by, votes=batch.votes,
                   sealed_at=batch.sealed_at.isoformat())
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
