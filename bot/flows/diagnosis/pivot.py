"""Step 4, ``pivot``: every app instance the evidence names (or, for an org, every
instance in scope); Loki again by app_instance_id; the instances' metadata.

An instance's logs are asked as soon as a source names it (``Context.leads``); this
step asks for the rest and collects them."""

from __future__ import annotations

import asyncio
from functools import partial

from bot.diagnosis import core
from bot.diagnosis.model import LogEvent
from bot.flows.diagnosis.context import Context, Step
from bot.flows.diagnosis.leads import LOKI_CONCURRENCY as PIVOT_CONCURRENCY
from bot.flows.diagnosis.leads import MAX_PIVOT_INSTANCES
from bot.flows.diagnosis.state import RunState
from bot.flows.steps_report import StepReport
from bot.sources import logql
from bot.sources.protocols import LogSource

SHOWN = 12


def guessed_instance_ids(ctx: Context, state: RunState) -> list[str]:
    """The instances this step will pivot on if the logs and spans name no others: those
    the billing rows name (and the subject's)."""
    aid = ctx.subject.app_instance_id
    return sorted(state.rows.named.instances | ({aid} if aid else set()))


async def _instance_ids(ctx: Context, state: RunState, rep: StepReport) -> list[str]:
    aid, billing = ctx.subject.app_instance_id, ctx.sources.billing
    spans = core.named(spans=state.trace.spans or [], extra_instances=[aid] if aid else [])
    instance_ids = sorted((state.logs.named | state.rows.named | spans).instances)
    if billing is not None and ctx.org_scope is not None:
        org, project = ctx.org_scope
        got = await ctx.billing(rep, billing.instances_in_scope, org, project, ctx.window)
        state.pivot.instances = got or []
        instance_ids = sorted({*instance_ids, *(i.app_instance_id for i in state.pivot.instances)})
    if len(instance_ids) > MAX_PIVOT_INSTANCES and ctx.org_scope is None:
        ctx.notes.append(f"{len(instance_ids)} app instances named; pivoting on the first {MAX_PIVOT_INSTANCES}")
        # the ones already asked first (the rows named them before the logs did)
        asked = ctx.leads.instances
        first = sorted(instance_ids, key=lambda i: i not in asked)  # stable: sorted within each part
        instance_ids = sorted(first[:MAX_PIVOT_INSTANCES])
    return instance_ids


async def _metadata(ctx: Context, state: RunState, rep: StepReport) -> None:
    billing, ids, pivot = ctx.sources.billing, state.pivot.instance_ids, state.pivot
    if billing is None or not ids:
        return
    if not pivot.instances:
        got_i, got_c = await asyncio.gather(ctx.billing(rep, billing.app_instances, ids),
                                            ctx.billing(rep, billing.components, ids))
        pivot.instances = got_i or []
    else:
        got_c = await ctx.billing(rep, billing.components, ids)
    pivot.components = got_c or []


async def logs_by_instance(ctx: Context, rep: StepReport, src: LogSource,
                           ids: list[str]) -> tuple[list[LogEvent], bool]:
    """Loki by app_instance_id for each of ``ids``, ``PIVOT_CONCURRENCY`` at a time: the
    lines, and whether every read answered (an org's instances with missing hours)."""
    limit = asyncio.Semaphore(PIVOT_CONCURRENCY)

    async def one(iid: str) -> list[LogEvent] | None:
        q = logql.by_app_instance_id(iid)
        async with limit:
            return await ctx.call(rep, "loki", partial(src.query, q, ctx.window), f"Loki {q.logql}")

    events: list[LogEvent] = []
    ok = True
    for got in await asyncio.gather(*(one(iid) for iid in ids)):
        if got is None:
            ok = False
        else:
            events.extend(got)
    return events, ok


async def _logs(ctx: Context, state: RunState, rep: StepReport) -> None:
    ids, leads = state.pivot.instance_ids, ctx.leads
    leads.start_instances(ids)  # what the rows, logs and spans did not start already
    state.pivot.logs_asked = True
    for got in await asyncio.gather(*(
        ctx.settle(rep, "loki", leads.instances[iid], f"Loki {logql.by_app_instance_id(iid).logql}") for iid in ids
    )):
        if got is None:
            state.logs_available = False
        else:
            state.pivot.logs.extend(got)


async def fetch(ctx: Context, state: RunState, rep: StepReport) -> None:
    ctx.leads.stop()  # the evidence that names instances is all in: the set is this step's now
    state.pivot.instance_ids = await _instance_ids(ctx, state, rep)
    # an org's instances are screened in the database; the reconciliation reads the logs of
    # those with missing hours only (scope_logs.py)
    if ctx.sources.logs is None or ctx.org_scope is not None:
        await _metadata(ctx, state, rep)
    else:
        await asyncio.gather(_metadata(ctx, state, rep), _logs(ctx, state, rep))


def report(ctx: Context, state: RunState, rep: StepReport) -> None:
    ids = state.pivot.instance_ids
    if state.pivot.logs_asked and ids:
        ctx.searched.append(f"Loki by app_instance_id for {len(ids)} instance(s): {len(state.pivot.logs)} lines")
    found = {i.app_instance_id for i in state.pivot.instances}
    unknown = [i for i in ids if i not in found]
    rep.lines.append(f"{len(ids)} app instance(s): {', '.join(ids[:SHOWN]) or 'none'}"
                     + (" …" if len(ids) > SHOWN else ""))
    if unknown and ctx.sources.billing is not None and ctx.health["billing"] == "ok":
        rep.lines.append(f"not in billing.app_instances: {', '.join(unknown[:10])}")


STEP = Step("pivot", fetch, report, needs=("logs", "billing_rows", "trace"))
