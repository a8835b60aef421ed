"""Step 6, ``reconciliation``: the ledger entries of the rows (and debits without a row)
against the rows; completeness and uniqueness; every check's findings, the corrections
the approved procedure would post, and one follow-up per owning layer."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from bot.diagnosis import core
from bot.diagnosis.checks import RECONCILIATION_CHECKS, propose_corrections, run_checks, sort_findings
from bot.diagnosis.followups import follow_ups
from bot.diagnosis.model import LedgerEntry, UsageRecord
from bot.flows.diagnosis.attribution import evidence
from bot.flows.diagnosis.context import Context, Step
from bot.flows.diagnosis.scope_logs import read_scope_logs, report_scope_logs
from bot.flows.diagnosis.state import Reconciliation, RunState
from bot.flows.steps_report import StepReport, Verdict
from bot.sources.protocols import BillingReader


def correlation_ids(subject_cid: str | None, usage: Sequence[UsageRecord]) -> list[str]:
    """The calls whose debits without a usage row are looked for: the subject's and the rows'."""
    return sorted({c for c in (subject_cid, *(u.correlation_id for u in usage)) if c})


def row_ids(usage: Sequence[UsageRecord]) -> list[str]:
    """The rows whose ledger entries are read, sorted (not in arrival order: the evidence
    is the same each run)."""
    return sorted({u.usage_record_id for u in usage})


async def fetch(ctx: Context, state: RunState, rep: StepReport) -> None:
    """Waits for the attribution's rows (screened at scale: the screening also answered
    the debits without a usage row of the instances' projects, and the credits that the
    ledger read then need not read again)."""
    await state.attribution.read.wait()
    await _read(ctx, state, rep)


async def _orphans(ctx: Context, state: RunState, rep: StepReport,
                   billing: BillingReader) -> list[LedgerEntry] | None:
    """Usage debits without a usage row: an org's, of every (org, project) of its instances
    and of the correlated entries; else those of the subject's calls."""
    corr_ledger, a = state.rows.ledger, state.attribution
    if ctx.org_scope is None:
        return await ctx.billing(rep, billing.orphan_debits_by_correlation,
                                 correlation_ids(ctx.subject.correlation_id, a.usage), ctx.window)
    pairs = ({(i.org_id, i.project_id) for i in state.pivot.instances}
             | {(e.org_id, e.project_id) for e in corr_ledger})
    ids = [i.app_instance_id for i in state.pivot.instances]
    if a.credits is None:  # not screened, or the screening did not answer
        return await ctx.billing(rep, billing.orphan_debits, sorted(pairs), ctx.window, ids)
    extra = sorted(pairs - a.credits.org_projects)
    more = await ctx.billing(rep, billing.orphan_debits, extra, ctx.window, ids) if extra else []
    return None if more is None else [*a.orphans, *more]


async def _read(ctx: Context, state: RunState, rep: StepReport) -> None:
    billing, instances, corr_ledger = ctx.sources.billing, state.pivot.instances, state.rows.ledger
    if billing is None or not (instances or corr_ledger):
        return
    usage, credits = state.attribution.usage, state.attribution.credits
    # asked exactly as the prefetch asks it (bot.flows.diagnosis.ahead) unless screened
    ledger_read = (ctx.billing(rep, billing.ledger_for_usage, row_ids(usage)) if credits is None
                   else ctx.billing(rep, billing.ledger_for_usage, row_ids(usage), credits))
    got_ledger, got_orphans, _ = await asyncio.gather(
        ledger_read,
        _orphans(ctx, state, rep, billing),
        read_scope_logs(ctx, state, rep),  # an org's: the logs of its instances with missing hours
    )
    ledger, orphans = got_ledger or [], got_orphans or []
    have = {e.ledger_entry_id for e in ledger}
    for entry in [*orphans, *corr_ledger]:
        if entry.ledger_entry_id not in have:
            ledger.append(entry)
            have.add(entry.ledger_entry_id)
    r = state.reconciliation
    r.read, r.ledger, r.orphans = True, ledger, len(orphans)


def verdict(r: Reconciliation) -> Verdict:
    by_check: dict[str, int] = {}
    for f in r.findings:
        by_check[f.check] = by_check.get(f.check, 0) + 1
    return Verdict(impact=core.impact_of(r.findings), follow_ups=r.follow_ups, corrections=r.corrections,
                   by_check=by_check)


def report(ctx: Context, state: RunState, rep: StepReport) -> None:
    r = state.reconciliation
    r.findings = list(state.attribution.findings)
    if r.read:
        rep.lines.append(f"{len(r.ledger)} ledger entries ({r.orphans} debit(s) without a usage row)")
        report_scope_logs(ctx, state, rep)
        if not state.logs_available and state.pivot.instances:
            ctx.notes.append("logs unavailable: the owning layer of missing usage is not confirmed")
        ev = evidence(ctx, state, r.ledger)
        r.findings = sort_findings([*state.attribution.findings, *run_checks(ev, RECONCILIATION_CHECKS)])
        r.corrections = propose_corrections(ev, r.findings)
    # the export's findings (step "export", when one was given) come last: they change no charge
    r.findings.extend(state.export.findings)
    r.follow_ups = follow_ups(r.findings)
    rep.findings = r.findings
    rep.verdict = verdict(r)
    if ctx.sources.billing is None:
        rep.state = "failed"
    elif ctx.health["billing"] != "ok":
        rep.state = "partial"


# its reading waits for the attribution's rows itself (``Attribution.read``)
STEP = Step("reconciliation", fetch, report, needs=("billing_rows", "pivot"))
