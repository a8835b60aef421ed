"""Step 3, ``trace``: the traces the logs and rows name, read from Tempo; the four stages.

The reads start as soon as the rows or the logs name a trace (``Context.leads``); this
step collects them. An app instance subject has no correlation id to start from: its traces are the ones
its own usage rows name, read once those are known (``instance_traces``, after the
attribution)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from functools import partial

from bot.diagnosis import core
from bot.flows.diagnosis.context import Context, Step
from bot.flows.diagnosis.leads import MAX_TRACES
from bot.flows.diagnosis.state import RunState, TraceRead
from bot.flows.steps_report import StepReport
from bot.sources.protocols import TraceSource


async def read_traces(ctx: Context, rep: StepReport, tempo: TraceSource, trace_ids: Sequence[str]) -> TraceRead:
    fetched = await asyncio.gather(*(
        ctx.call(rep, "tempo", partial(tempo.get_trace, tid, ctx.window), f"Tempo trace {tid}")
        for tid in trace_ids
    ))
    return TraceRead(list(zip(trace_ids, fetched, strict=True)))


def describe(ctx: Context, rep: StepReport, read: TraceRead) -> None:
    """The traces read: which were not found, the stages they show, their error spans."""
    for tid, got in read.asked:
        if got == []:
            rep.lines.append(f"trace {tid}: not found")
    spans = read.spans
    ctx.searched.append(f"Tempo: {len(read.asked)} trace(s), {len(spans)} spans")
    if read.all_failed:
        return
    st = core.stages(spans, [])
    rep.lines.append(f"lifecycle {st.app_lifecycle}, outbox {st.outbox_publish}, billing worker {st.billing_worker}")
    for s in spans:
        if s.status == "error":
            rep.lines.append(f"error span: {s.service} {s.name} ({s.trace_id[:8]}…)")


def _by_correlation(ctx: Context) -> bool:
    """Whether the trace ids come from the correlation id's evidence (not the instance's rows)."""
    return not (ctx.subject.app_instance_id and not ctx.subject.correlation_id)


async def _collect(ctx: Context, rep: StepReport) -> TraceRead:
    """Every trace read started (by ``leads`` or just now), in trace id order."""
    tids = sorted(ctx.leads.traces)
    fetched = await asyncio.gather(*(
        ctx.settle(rep, "tempo", ctx.leads.traces[tid], f"Tempo trace {tid}") for tid in tids
    ))
    return TraceRead(list(zip(tids, fetched, strict=True)))


async def fetch(ctx: Context, state: RunState, rep: StepReport) -> None:
    trace_ids = sorted(state.logs.named.traces | state.rows.named.traces)
    if not _by_correlation(ctx):
        trace_ids = []  # read after the attribution, from the instance's own rows
    if ctx.sources.traces is None:
        state.trace.spans = None
        return
    if not trace_ids and ctx.subject.correlation_id:
        return
    ctx.leads.start_traces(trace_ids)  # what the rows and logs did not start already
    read = state.trace.read = await _collect(ctx, rep)
    state.trace.spans = None if read.all_failed else read.spans


def report(ctx: Context, state: RunState, rep: StepReport) -> None:
    if ctx.sources.traces is None:
        rep.state = "failed"
        rep.lines.append(f"traces unavailable: {ctx.why_missing('tempo')}")
    elif state.trace.read is None:
        rep.lines.append("no trace id in the evidence")
        ctx.searched.append("Tempo: no trace id to look up")
    else:
        describe(ctx, rep, state.trace.read)


async def instance_traces(ctx: Context, state: RunState, rep: StepReport) -> None:
    """An app instance subject: its own traces, now that its rows are known."""
    tempo, spans = ctx.sources.traces, state.trace.spans
    if _by_correlation(ctx) or tempo is None or spans is None:
        return
    tids = sorted({u.trace_id.lower() for u in state.attribution.usage if u.trace_id})[:MAX_TRACES]
    if tids:
        read = await read_traces(ctx, rep, tempo, tids)
        describe(ctx, rep, read)
        spans.extend(read.spans)


STEP = Step("trace", fetch, report, needs=("logs", "billing_rows"))
