"""An org's logs, for the instances that need them: those with missing hours.

A correlation diagnosis reads Loki by app_instance_id for every instance it pivots on.
An org may have a thousand instances; the database screens their rows instead, and only
the instances with missing hours need their logs, to tell which layer lost the usage
(``metering_emitter``: never emitted or published; ``billing_worker``: published, not
recorded). Those are read, at most ``MAX_SCOPE_LOG_INSTANCES`` of them, as many at a time
as the pivot reads; the others' missing usage stays on the emitter, not confirmed.
"""

from __future__ import annotations

from dataclasses import replace

from bot.diagnosis.checks import run_checks
from bot.diagnosis.model import CheckName
from bot.flows.diagnosis.attribution import evidence
from bot.flows.diagnosis.context import Context
from bot.flows.diagnosis.leads import MAX_PIVOT_INSTANCES
from bot.flows.diagnosis.pivot import logs_by_instance
from bot.flows.diagnosis.state import RunState
from bot.flows.steps_report import StepReport

MAX_SCOPE_LOG_INSTANCES = MAX_PIVOT_INSTANCES
_MISSING: tuple[CheckName, ...] = ("missing_usage",)


def with_missing_hours(ctx: Context, state: RunState) -> list[str]:
    """The instances in scope with an hour of activity and no row (rule 4), in id order."""
    ev = replace(evidence(ctx, state, []), logs=[], logs_available=False, logs_for=None)
    return sorted({f.app_instance_id for f in run_checks(ev, _MISSING) if f.app_instance_id})


async def read_scope_logs(ctx: Context, state: RunState, rep: StepReport) -> None:
    """For an org scope with Loki: the logs of the instances with missing hours."""
    src, r = ctx.sources.logs, state.reconciliation
    if ctx.org_scope is None or src is None or not state.pivot.instances:
        return
    wanted = with_missing_hours(ctx, state)
    r.logs_wanted = len(wanted)
    ids = wanted[:MAX_SCOPE_LOG_INSTANCES]
    events, ok = await logs_by_instance(ctx, rep, src, ids) if ids else ([], True)
    r.scope_logs = events
    r.logs_for = frozenset(ids)
    if not ok:
        state.logs_available = False


def report_scope_logs(ctx: Context, state: RunState, rep: StepReport) -> None:
    """What was read, in the step's lines and the "searched" list."""
    r = state.reconciliation
    if r.logs_for is None:
        return
    k, n = len(r.logs_for), r.logs_wanted
    line = f"logs read for {k} of {n} instance(s) (those with missing hours): {len(r.scope_logs)} lines"
    rep.lines.append(line)
    ctx.searched.append(f"Loki by app_instance_id: {line}")
    if k < n:
        ctx.notes.append(f"logs read for the first {k} of {n} instances with missing hours: the owning layer "
                         f"of the others' missing usage is not confirmed")
