"""Read an export and reconcile it against the billing database: the "Usage export" step's work.

``reconcile_export`` reads the file (in a thread: parsing a million lines must not stop
the event loop), streams the org's ledger entries of the export's months through a
``Tally``, reads the file again for the breaks' lines only, and returns the
``ExportRead`` evidence, the ``export_mismatch`` findings and the source call. A
malformed file raises ``ExportInvalid`` before anything is asked of the database.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from bot.diagnosis.model import ExportRead, Finding
from bot.export.csvfile import ExportFile, ExportInvalid
from bot.export.findings import export_findings
from bot.export.reconcile import Break, BreakKind, Tally, details
from bot.sources.protocols import BillingReader, SourceCall


@dataclass(slots=True)
class ExportOutcome:
    read: ExportRead
    findings: list[Finding]
    counts: dict[BreakKind, int]
    entries: int  # ledger entries of the scope read from the database
    call: SourceCall | None

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
    await asyncio.to_thread(_first_pass, export, tally)
    if narrow_to is not None and export.projects <= {narrow_to}:
        project_id = narrow_to
    org = export.org_id
    if org is None:
        raise ExportInvalid("the export has no lines and no org was named for it")
    scope_months = sorted(set(months) if months else export.months | set(cover))
    call = None
    if scope_months:
        call = await billing.scan_export_entries(org, project_id, scope_months, tally.add_entries)
    wanted = tally.finish()
    breaks: list[Break] = []
    if tally.broken:
        breaks = await asyncio.to_thread(_second_pass, export, tally, wanted)
    read = ExportRead(origin=export.origin, org_id=org, project_id=project_id, months=scope_months,
                      lines=export.count, sha256=export.sha256)
    return ExportOutcome(read, export_findings(breaks, org, scope_months, tally.counts), tally.counts,
                         tally.entries, call)


def _first_pass(export: ExportFile, tally: Tally) -> None:
    tally.add_lines(export.tuples())


def _second_pass(export: ExportFile, tally: Tally, wanted: set[int]) -> list[Break]:
    return details(tally, wanted, export.lines(only=wanted))
