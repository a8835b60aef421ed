"""Step 2, ``billing_rows``: usage rows and ledger entries that carry the correlation id,
and the usage rows those entries name."""

from __future__ import annotations

import asyncio

from bot.diagnosis import core
from bot.flows.diagnosis.context import Context, Step
from bot.flows.diagnosis.prefetch import read_ahead
from bot.flows.diagnosis.state import RunState
from bot.flows.steps_report import StepReport


async def fetch(ctx: Context, state: RunState, rep: StepReport) -> None:
    cid, billing = ctx.subject.correlation_id, ctx.sources.billing
    if cid is None or billing is None:
        return
    got_u, got_l = await asyncio.gather(
        ctx.billing(rep, billing.usage_by_correlation, cid, ctx.window),
        ctx.billing(rep, billing.ledger_by_correlation, cid, ctx.window),
    )
    usage, ledger = got_u or [], got_l or []
    known = {u.usage_record_id for u in usage}
    refs = sorted({e.usage_record_id for e in ledger if e.usage_record_id} - known)
    if refs:
        usage.extend(await ctx.billing(rep, billing.usage_by_ids, refs) or [])
    state.rows.usage, state.rows.ledger = usage, ledger
    state.rows.named = core.named(usage=usage, ledger=ledger)
    ctx.leads.saw(state.rows.named)  # the rows' traces and instances: read them now, not after the logs
    read_ahead(ctx, state)  # and the billing reads of steps 4 to 6 for those instances


def report(ctx: Context, state: RunState, rep: StepReport) -> None:
    if ctx.subject.correlation_id is None:
        rep.state = "skipped"
        rep.lines.append("no correlation id")
        return
    if ctx.sources.billing is None:
        rep.state = "failed"
        rep.lines.append(f"billing database unavailable: {ctx.why_missing('billing')}")
        return
    usage, ledger = state.rows.usage, state.rows.ledger
    ctx.searched.append(f"usage_records by correlation_id: {len(usage)} rows")
    ctx.searched.append(f"ledger_entries by correlation_id: {len(ledger)} entries")
    rep.lines.append(f"{len(usage)} usage rows, {len(ledger)} ledger entries carry the id")


STEP = Step("billing_rows", fetch, report)
