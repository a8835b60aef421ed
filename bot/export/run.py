"""Read an export and reconcile it against the billing database: the "Usage export" step's work.

``reconcile_export`` reads the file (in a thread: parsing a million lines must not stop
the event loop), streams the org's ledger entries of the export's months through a
``Tally`` (both as canonical texts, ``bot.export.canon``), reads the stored side of the
breaks and the file again for the breaks' lines only, and returns the ``ExportRead``
evidence, the ``export_mismatch`` findings and the source calls. A malformed file raises
``ExportInvalid`` before anything is asked of the database.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from bot.diagnosis.model import ExportRead, Finding
from bot.export.csvfile import ExportFile, ExportInvalid
from bot.export.findings import export_findings
from bot.export.reconcile import Break, BreakKind, Tally, details
from bot.sources.protocols import BillingReader, SourceCall

log = logging.getLogger(__name__)


@dataclass(slots=True)
class ExportOutcome:
    read: ExportRead
    findings: list[Finding]
    counts: dict[BreakKind, int]
    entries: int  # ledger entries of the scope read from the database
    call: SourceCall | None
    detail_call: SourceCall | None = None  # the stored side of the breaks put in words
    seconds: dict[str, float] = field(default_factory=dict)  # per phase: file, ledger, details

    @property
    def faithful(self) -> bool:
        return not any(self.counts.values())


async def reconcile_export(export: ExportFile, billing: BillingReader, *, project_id: str | None = None,
                           months: Sequence[str] | None = None, cover: Sequence[str] = (),
                           narrow_to: str | None = None) -> ExportOutcome:
    """Rule 8 for one export. ``months``: the months asked for (a fetched export); else the
    months its lines name and the ``cover`` months (a file that must cover a window: a month
    with entries and no line is then a break, not a month the file left out). ``project_id``:
    a project-scoped export covers that project only. ``narrow_to``: a project a given file
    may be the export of: it is, when every line is of that project; else it is the org's."""
    tally = Tally()
    t0 = time.perf_counter()
    await asyncio.to_thread(_first_pass, export, tally)
    t1 = time.perf_counter()
    if narrow_to is not None and export.projects <= {narrow_to}:
        project_id = narrow_to
    org = export.org_id
    if org is None:
        raise ExportInvalid("the export has no lines and no org was named for it")
    scope_months = sorted(set(months) if months else export.months | set(cover))
    call = None
    if scope_months:
        call = await billing.scan_export_lines(org, project_id, scope_months, tally.add_entries)
    wanted = tally.finish()
    t2 = time.perf_counter()
    breaks: list[Break] = []
    detail_call = None
    if tally.stored_ids:
        stored = await billing.export_entries_by_id(org, tally.stored_ids)
        tally.add_stored(stored.items)
        detail_call = stored.call
    if tally.broken:
        breaks = await asyncio.to_thread(_second_pass, export, tally, wanted)
    t3 = time.perf_counter()
    read = ExportRead(origin=export.origin, org_id=org, project_id=project_id, months=scope_months,
                      lines=export.count, sha256=export.sha256)
    seconds = {"file": t1 - t0, "ledger": t2 - t1, "details": t3 - t2}
    log.info("export of %s %s: %d lines read in %.1f s, %d ledger entries in %.1f s, breaks %s put in words "
             "in %.1f s", org, ",".join(scope_months), export.count, seconds["file"], tally.entries,
             seconds["ledger"], dict(tally.counts), seconds["details"])
    return ExportOutcome(read, export_findings(breaks, org, scope_months, tally.counts), tally.counts,
                         tally.entries, call, detail_call, seconds)


def _first_pass(export: ExportFile, tally: Tally) -> None:
    tally.add_texts(export.texts())
    tally.freeze()


def _second_pass(export: ExportFile, tally: Tally, wanted: set[int]) -> list[Break]:
    return details(tally, wanted, export.lines(only=wanted))
