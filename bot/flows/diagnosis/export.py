"""Step "Usage export" (rule 8): what the customer's export shows against the ledger.

It runs only when the diagnosis was given an export (``Context.export``): one read
before the run (``ExportReady``: its outcome is reported here), or ``BILLING_EXPORT_URL``
(``ExportFetch``: fetched here for the scope's org, project and months). Its
``export_mismatch`` findings (owning layer ``ui_export``, impact 0) join the
reconciliation's, which comes after it. The export's origin, months, lines and SHA-256
are recorded as evidence, and so is the ledger query it was compared with.
"""

from __future__ import annotations

import httpx

from bot.errors import SourceFailure
from bot.export.csvfile import ExportInvalid
from bot.export.fetch import fetch_billing_exports
from bot.export.request import ExportFetch, ExportReady, months_of
from bot.export.run import ExportOutcome, reconcile_export
from bot.flows.diagnosis.context import Context, Step
from bot.flows.diagnosis.state import RunState
from bot.flows.steps_report import StepReport
from bot.sources.protocols import SourceCall


def applies(ctx: Context) -> bool:
    return ctx.export is not None


async def fetch(ctx: Context, state: RunState, rep: StepReport) -> None:
    part = state.export
    if isinstance(ctx.export, ExportReady):
        part.outcome = ctx.export.outcome
    elif isinstance(ctx.export, ExportFetch):
        part.outcome = await _fetched(ctx, state, ctx.export, rep)
    if part.outcome is not None:
        part.state = "ok"
        await _record(ctx, rep, part.outcome)


async def _fetched(ctx: Context, state: RunState, req: ExportFetch, rep: StepReport) -> ExportOutcome | None:
    billing = ctx.sources.billing
    org, project = _scope(ctx, state)
    if billing is None or org is None:
        state.export.state = "unavailable"
        state.export.why = ("the billing database is unavailable" if billing is None
                            else "the diagnosis names no single org to fetch the export of")
        return None
    months = months_of(ctx.window.start, ctx.window.end)
    try:
        async with httpx.AsyncClient(timeout=req.timeout_s) as client:
            export = await fetch_billing_exports(client, req.template, req.token, org, project, months,
                                                 req.max_bytes)
            try:
                return await reconcile_export(export, billing, project_id=project, months=months)
            finally:
                export.close()
    except SourceFailure as e:
        state.export.state = "unavailable" if e.status == "unavailable" else "error"
        state.export.why = e.reason
    except ExportInvalid as e:
        state.export.state = "error"
        state.export.why = f"the billing API's export is malformed: {e}"
    ctx.notes.append(f"export: {state.export.why}")
    failed = SourceCall(source="export", kind="error", request="BILLING_EXPORT_URL")
    await ctx.observer.source_call(rep.name, failed, [], state.export.why)
    return None


def _scope(ctx: Context, state: RunState) -> tuple[str | None, str | None]:
    """The org (and project) whose export the diagnosis is about."""
    if ctx.org_scope is not None:
        return ctx.org_scope
    pairs = {(i.org_id, i.project_id) for i in state.pivot.instances} | {(u.org_id, u.project_id)
                                                                          for u in state.rows.usage}
    orgs = {o for o, _ in pairs}
    if len(orgs) != 1:
        return None, None
    projects = {p for _, p in pairs}
    return orgs.pop(), projects.pop() if len(projects) == 1 else None


async def _record(ctx: Context, rep: StepReport, got: ExportOutcome) -> None:
    read = got.read
    call = SourceCall(source="export", kind="export", request=read.origin,
                      params={"org_id": read.org_id, "project_id": read.project_id, "months": read.months,
                              "lines": read.lines, "sha256": read.sha256, "ledger_entries": got.entries,
                              "breaks": dict(got.counts)}, window=ctx.window, via="export")
    rep.calls.append(call)
    await ctx.observer.source_call(rep.name, call, [f.model_dump(mode="json") for f in got.findings], None)
    for sql in (got.call, got.detail_call):
        if sql is not None:
            rep.calls.append(sql)
            await ctx.observer.source_call(rep.name, sql, [], None)


def report(ctx: Context, state: RunState, rep: StepReport) -> None:
    part = state.export
    got = part.outcome
    if got is None:
        rep.state = "failed"
        rep.lines.append(f"export {part.state}: {part.why}")
        return
    read = got.read
    where = f"{read.org_id}" + (f" project {read.project_id}" if read.project_id else "")
    rep.lines.append(f"{read.origin}: {read.lines:,} lines of {where} for {', '.join(read.months) or 'no month'} "
                     f"(sha256 {read.sha256[:12]}…)")
    breaks = sum(got.counts.values())
    if not breaks:
        rep.lines.append(f"faithful: every one of the {got.entries:,} ledger entries shown once, as stored")
    else:
        told = ", ".join(f"{n:,} {k}" for k, n in got.counts.items() if n)
        rep.lines.append(f"{breaks:,} lines or entries break rule 8 ({told}) against {got.entries:,} ledger entries")
    part.findings = got.findings
    rep.findings = got.findings
    ctx.searched.append(f"usage export {read.origin}: {read.lines:,} lines, {breaks:,} breaks")


STEP = Step("export", fetch, report, needs=("pivot",), applies=applies)
