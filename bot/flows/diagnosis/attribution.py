"""Step 5, ``attribution``: the instances' usage rows in the window against their
metadata and prices; rules 1 to 3 (they need no ledger)."""

from __future__ import annotations

import asyncio
from functools import partial

from bot.diagnosis.checks import ATTRIBUTION_CHECKS, BillingEvidence, run_checks
from bot.diagnosis.model import BillingAccount, LedgerEntry, RateCard
from bot.flows.diagnosis.context import Context, Step
from bot.flows.diagnosis.state import RunState
from bot.flows.diagnosis.trace import instance_traces
from bot.flows.steps_report import StepReport
from bot.sources.protocols import BillingReader

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


async def _prices(ctx: Context, state: RunState, rep: StepReport,
                  billing: BillingReader) -> tuple[list[BillingAccount], list[RateCard]]:
    orgs = sorted({i.org_id for i in state.pivot.instances} | {u.org_id for u in state.rows.usage}
                  | {e.org_id for e in state.rows.ledger})
    if not orgs:
        return [], []
    accounts = await ctx.call(rep, "billing", partial(billing.billing_accounts, orgs), "billing_accounts") or []
    currencies = sorted({a.currency for a in accounts})
    return accounts, await ctx.call(rep, "billing", partial(billing.rate_cards, currencies), "rate_cards") or []


async def _usage(ctx: Context, state: RunState, rep: StepReport, billing: BillingReader) -> None:
    instances, a = state.pivot.instances, state.attribution
    ids = [i.app_instance_id for i in instances]
    if instances and screened(ctx, len(instances)):
        # at scale the database screens the rows; only the doubtful ones come back
        got_u, got_cov = await asyncio.gather(
            ctx.call(rep, "billing", partial(billing.suspect_usage, ids, ctx.window), "suspect_usage"),
            ctx.call(rep, "billing", partial(billing.usage_coverage, ids, ctx.window), "usage_coverage"),
        )
        a.usage = got_u or []
        a.covered = {(c.app_instance_id, c.component): frozenset(c.hours) for c in got_cov or []}
        a.rows_examined = sum(c.rows for c in got_cov or [])
    elif instances:
        a.usage = await ctx.call(rep, "billing", partial(billing.usage_for_instances, ids, ctx.window),
                                 "usage_for_instances") or []
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
    seen = {u.usage_record_id for u in a.usage}
    # screened: the database already saw every row of the instances in scope
    in_scope = {i.app_instance_id for i in state.pivot.instances} if a.covered is not None else set()
    a.usage.extend(u for u in state.rows.usage if u.usage_record_id not in seen and u.app_instance_id not in in_scope)


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
