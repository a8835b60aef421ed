"""Step 5, ``attribution``: the instances' usage rows in the window against their
metadata and prices; rules 1 to 3 (they need no ledger)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from bot.diagnosis.checks import ATTRIBUTION_CHECKS, BillingEvidence, run_checks
from bot.diagnosis.model import AppInstance, BillingAccount, LedgerEntry, RateCard, UsageRecord
from bot.flows.diagnosis.context import Context, Step
from bot.flows.diagnosis.state import CorrelatedRows, RunState
from bot.flows.diagnosis.trace import instance_traces
from bot.flows.steps_report import StepReport
from bot.sources.protocols import BillingReader, covered_hours, hidden_gaps, split_screened

FULL_READ_INSTANCES = 50
SHOWN = 12


def screened(ctx: Context, n_instances: int) -> bool:
    """Read every row (complete evidence) up to a few dozen instances; screen beyond."""
    return ctx.org_scope is not None or n_instances > FULL_READ_INSTANCES


def evidence(ctx: Context, state: RunState, ledger: list[LedgerEntry]) -> BillingEvidence:
    """What the checks look at: the instances, their rows, the given ledger, the prices."""
    a, logs_for = state.attribution, state.reconciliation.logs_for
    # an org's logs are read for its instances with missing hours only (step reconciliation)
    read = ctx.org_scope is None or logs_for is not None
    return BillingEvidence(window=ctx.window, now=ctx.now, instances=state.pivot.instances,
                           components=state.pivot.components, usage=a.usage, ledger=ledger, accounts=a.accounts,
                           rate_cards=a.rate_cards, logs=state.all_logs, metering=state.metering_logs(),
                           logs_available=state.logs_available and read,
                           covered=a.covered, logs_for=logs_for if ctx.org_scope is not None else None)


def price_orgs(instances: Sequence[AppInstance], rows: CorrelatedRows) -> list[str]:
    """The orgs whose billing accounts (currencies) price the rows."""
    return sorted({i.org_id for i in instances} | {u.org_id for u in rows.usage} | {e.org_id for e in rows.ledger})


def currencies(accounts: Sequence[BillingAccount]) -> list[str]:
    return sorted({a.currency for a in accounts})


def with_rows(usage: list[UsageRecord], rows: CorrelatedRows, in_scope: set[str]) -> list[UsageRecord]:
    """The instances' rows, and the correlated rows of other instances (not in scope)."""
    seen = {u.usage_record_id for u in usage}
    usage.extend(u for u in rows.usage if u.usage_record_id not in seen and u.app_instance_id not in in_scope)
    return usage


async def _prices(ctx: Context, state: RunState, rep: StepReport,
                  billing: BillingReader) -> tuple[list[BillingAccount], list[RateCard]]:
    orgs = price_orgs(state.pivot.instances, state.rows)
    if not orgs:
        return [], []
    accounts = await ctx.billing(rep, billing.billing_accounts, orgs) or []
    return accounts, await ctx.billing(rep, billing.rate_cards, currencies(accounts)) or []


async def _usage(ctx: Context, state: RunState, rep: StepReport, billing: BillingReader) -> None:
    instances, a = state.pivot.instances, state.attribution
    if instances and screened(ctx, len(instances)):
        # at scale the database screens the rows; only the doubtful ones come back, with
        # the coverage, and the credits and the orphan debits of the instances' projects.
        # Its concurrent parts take contiguous runs of these ids: in project order, each
        # part reads the ledger of fewer projects
        ids = [i.app_instance_id for i in sorted(instances, key=lambda i: (i.org_id, i.project_id, i.app_instance_id))]
        answer = await ctx.billing(rep, billing.screen_usage, ids, ctx.window)
        got = split_screened(answer or [], ((i.org_id, i.project_id) for i in instances), ctx.window)
        a.usage, cov = got.usage, got.coverage
        if answer is not None:  # its credits and orphans are known only when it answered
            a.credits, a.orphans = got.credits, got.orphans
        gaps = hidden_gaps(cov, a.usage)
        exact = await ctx.billing(rep, billing.usage_hours, gaps, ctx.window) if gaps else []
        a.covered = covered_hours(cov, exact or [])
        a.rows_examined = sum(c.rows for c in cov)
    elif instances:
        ids = [i.app_instance_id for i in instances]
        a.usage = await ctx.billing(rep, billing.usage_for_instances, ids, ctx.window) or []
        a.rows_examined = len(a.usage)


async def fetch(ctx: Context, state: RunState, rep: StepReport) -> None:
    try:
        await _fetch(ctx, state, rep)
    finally:
        state.attribution.read.set()


async def _fetch(ctx: Context, state: RunState, rep: StepReport) -> None:
    billing, a = ctx.sources.billing, state.attribution
    if billing is None:
        return
    (a.accounts, a.rate_cards), _ = await asyncio.gather(_prices(ctx, state, rep, billing),
                                                         _usage(ctx, state, rep, billing))
    # screened: the database already saw every row of the instances in scope
    in_scope = {i.app_instance_id for i in state.pivot.instances} if a.covered is not None else set()
    a.usage = with_rows(a.usage, state.rows, in_scope)


def report(ctx: Context, state: RunState, rep: StepReport) -> None:
    if ctx.sources.billing is None:
        rep.state = "failed"
        rep.lines.append("billing database unavailable")
        return
    instances, a = state.pivot.instances, state.attribution
    for i in instances[:SHOWN]:
        rep.lines.append(f"{i.app_instance_id}: {i.operating_mode}, {i.runtime_backend}, control plane "
                         f"{i.control_plane_scope}, {i.org_id}/{i.project_id}")
    if len(instances) > SHOWN:
        rep.lines.append(f"… and {len(instances) - SHOWN} more")
    note = f" (screened in the database: {len(a.usage):,} need a closer look)" if a.covered is not None else ""
    rep.lines.append(f"{a.rows_examined:,} usage rows in the window{note}; {len(a.rate_cards)} rate cards in "
                     f"{', '.join(sorted({x.currency for x in a.accounts})) or 'no currency'}")
    if instances:
        a.findings = run_checks(evidence(ctx, state, []), ATTRIBUTION_CHECKS)
    rep.findings = a.findings
    if ctx.health["billing"] != "ok":
        rep.state = "partial"


STEP = Step("attribution", fetch, report, needs=("billing_rows", "pivot"), then=instance_traces)
