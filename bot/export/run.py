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
import contextlib
import dataclasses
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
    may be the export of: it is, when every line is of that project; else it is the org's.

    The ledger is read while the file is: its scope is taken from the file's first line
    (checked first) and made good once the whole file is read (the months the first line
    did not name are read after it; a wrong guess of the project is read again)."""
    tally = Tally()
    t0 = time.perf_counter()
    guess = await asyncio.to_thread(_guess, export, project_id, months, cover, narrow_to)
    early = _LedgerRead(billing, tally, guess) if guess is not None else None
    try:
        await asyncio.to_thread(_first_pass, export, tally)
    except BaseException:
        if early is not None:
            await early.cancel()
        raise
    t1 = time.perf_counter()
    if narrow_to is not None and export.projects <= {narrow_to}:
        project_id = narrow_to
    org = export.org_id
    if org is None:
        raise ExportInvalid("the export has no lines and no org was named for it")
    scope = _Scope(org, project_id, tuple(sorted(set(months) if months else export.months | set(cover))))
    call = await _read_ledger(billing, tally, early, scope)
    wanted = tally.match()
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
    read = ExportRead(origin=export.origin, org_id=org, project_id=project_id, months=list(scope.months),
                      lines=export.count, sha256=export.sha256)
    seconds = {"file": t1 - t0, "ledger": t2 - t1, "details": t3 - t2}
    log.info("export of %s %s: %d lines read in %.1f s (the ledger read alongside), %d ledger entries %.1f s "
             "later, breaks %s put in words in %.1f s", org, ",".join(scope.months), export.count, seconds["file"],
             tally.entries, seconds["ledger"], dict(tally.counts), seconds["details"])
    return ExportOutcome(read, export_findings(breaks, org, list(scope.months), tally.counts), tally.counts,
                         tally.entries, call, detail_call, seconds)


@dataclass(frozen=True, slots=True)
class _Scope:
    org_id: str
    project_id: str | None
    months: tuple[str, ...]


class _LedgerRead:
    """The ledger's entries of a scope, read by a task of their own into the tally."""

    def __init__(self, billing: BillingReader, tally: Tally, scope: _Scope) -> None:
        self.scope = scope
        self.task = asyncio.ensure_future(
            billing.scan_export_lines(scope.org_id, scope.project_id, list(scope.months), tally.add_entries))

    async def cancel(self) -> None:
        self.task.cancel()
        with contextlib.suppress(BaseException):
            await self.task


def _guess(export: ExportFile, project_id: str | None, months: Sequence[str] | None, cover: Sequence[str],
           narrow_to: str | None) -> _Scope | None:
    """The scope as the file's first line tells it (None for a file with no line)."""
    first = export.first_line()
    if first is None or not first.billing_month:
        return None
    project = project_id if project_id is not None else (narrow_to if first.project_id == narrow_to else None)
    return _Scope(first.org_id, project, tuple(sorted(set(months) if months else {first.billing_month, *cover})))


async def _read_ledger(billing: BillingReader, tally: Tally, early: _LedgerRead | None,
                       scope: _Scope) -> SourceCall | None:
    """The scope's entries into the tally: what the early read got, if its guess holds, and
    the months it did not read; one source call for it all."""
    calls: list[SourceCall] = []
    rest = scope.months
    if early is not None:
        same = (early.scope.org_id, early.scope.project_id) == (scope.org_id, scope.project_id)
        if same and set(early.scope.months) <= set(scope.months):
            calls.append(await early.task)
            rest = tuple(m for m in scope.months if m not in early.scope.months)
        else:
            await early.cancel()
            tally.reset_entries()
    if rest:
        calls.append(await billing.scan_export_lines(scope.org_id, scope.project_id, list(rest), tally.add_entries))
    if not calls:
        return None
    return dataclasses.replace(calls[0], params={**calls[0].params, "months": list(scope.months)},
                               duration_ms=sum(c.duration_ms for c in calls))


def _first_pass(export: ExportFile, tally: Tally) -> None:  # in a thread
    tally.add_texts(export.texts())
    tally.freeze()


def _second_pass(export: ExportFile, tally: Tally, wanted: set[int]) -> list[Break]:
    return details(tally, wanted, export.lines(only=wanted))
