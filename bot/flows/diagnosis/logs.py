"""Step 1, ``logs``: Loki, every service's lines for the correlation id."""

from __future__ import annotations

from functools import partial

from bot.diagnosis import core
from bot.flows.diagnosis.context import Context, Step
from bot.flows.diagnosis.state import RunState
from bot.flows.steps_report import StepReport
from bot.sources import logql

MAX_ERROR_LINES = 5


async def fetch(ctx: Context, state: RunState, rep: StepReport) -> None:
    cid, src = ctx.subject.correlation_id, ctx.sources.logs
    if cid is None or src is None:
        return
    q = logql.by_correlation_id(cid)
    state.logs.query = q.logql
    async with ctx.leads.loki_slots:
        got = await ctx.call(rep, "loki", partial(src.query, q, ctx.window), f"Loki {q.logql}")
    if got is None:
        state.logs_available = False
        return
    state.logs.events, state.logs.read, state.logs.named = got, True, core.named(logs=got)
    ctx.leads.saw(state.logs.named)  # trace ids and instances only the logs name


def report(ctx: Context, state: RunState, rep: StepReport) -> None:
    if ctx.subject.correlation_id is None:
        rep.state = "skipped"
        rep.lines.append("no correlation id: diagnosing from the app instance")
        return
    if ctx.sources.logs is None:
        rep.state = "failed"
        rep.lines.append(f"logs unavailable: {ctx.why_missing('loki')}")
        return
    if not state.logs.read:
        return  # the failed call is in the lines already
    events = state.logs.events
    services = sorted({e.service for e in events})
    ctx.searched.append(f"Loki `{state.logs.query}` over {ctx.span_label}: {len(events)} lines")
    rep.lines.append(f"{len(events)} log lines from {', '.join(services) or 'no service'}")
    errors = [e for e in events if (e.get("level") or "").lower() == "error" or
              e.event.endswith(("_failed", "_rejected"))]
    for e in errors[:MAX_ERROR_LINES]:
        why = e.get("error") or e.get("msg")
        rep.lines.append(f"{e.ts:%Y-%m-%d %H:%M:%S} {e.service} {e.event}: {why}")


STEP = Step("logs", fetch, report)
