"""The runner: the runbook's steps in order, each announced, fetched, reported.

A step's reading starts as soon as the steps it ``needs`` are done (so ``logs`` and
``billing_rows``, which need nothing, start at once), and the traces and instances'
logs as soon as any source names them (``leads``); the thread still reads in the
list's order: each step is announced, awaited, reported and handed to the observer in
turn. Adding a step is one module (a ``Step``), its part of ``RunState``, its title in
``STEP_TITLES``, and one line in ``STEPS``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from bot.diagnosis.model import Diagnosis, Subject, Window
from bot.export.request import ExportRequest
from bot.flows.diagnosis.assemble import assemble
from bot.flows.diagnosis.attribution import STEP as ATTRIBUTION
from bot.flows.diagnosis.billing_rows import STEP as BILLING_ROWS
from bot.flows.diagnosis.context import Context, SourceSet, Step
from bot.flows.diagnosis.export import STEP as EXPORT
from bot.flows.diagnosis.logs import STEP as LOGS
from bot.flows.diagnosis.pivot import STEP as PIVOT
from bot.flows.diagnosis.reconciliation import STEP as RECONCILIATION
from bot.flows.diagnosis.state import RunState
from bot.flows.diagnosis.trace import STEP as TRACE
from bot.flows.steps_report import STEP_TITLES, NullObserver, Observer, StepReport

STEPS: tuple[Step, ...] = (
    LOGS,
    BILLING_ROWS,
    TRACE,
    PIVOT,
    ATTRIBUTION,
    EXPORT,
    RECONCILIATION,
)


@dataclass(slots=True)
class Outcome:
    diagnosis: Diagnosis
    steps: list[StepReport]


async def run_steps(ctx: Context, state: RunState, steps: Sequence[Step] = STEPS) -> list[StepReport]:
    reports = {s.name: StepReport(name=s.name, title=STEP_TITLES[s.name], of=len(steps)) for s in steps}
    fetching: dict[str, asyncio.Task[None]] = {}
    done: list[StepReport] = []
    try:
        for step in steps:
            finished = {r.name for r in done}
            for s in steps:
                if s.name not in fetching and all(n in finished for n in s.needs):
                    fetching[s.name] = asyncio.create_task(s.fetch(ctx, state, reports[s.name]))
            rep = reports[step.name]
            await ctx.observer.step_started(step.name, rep.title)
            await fetching[step.name]
            step.report(ctx, state, rep)
            done.append(rep)
            await ctx.observer.step_finished(rep)
            if step.then is not None:
                await step.then(ctx, state, rep)
    finally:
        # a step that raised, or a run that timed out, leaves no reading behind
        for task in fetching.values():
            task.cancel()
        await asyncio.gather(*fetching.values(), ctx.leads.aclose(), ctx.ahead.aclose(), return_exceptions=True)
    return done


async def diagnose(
    subject: Subject,
    window: Window,
    now: datetime,
    sources: SourceSet,
    observer: Observer | None = None,
    org_scope: tuple[str, str | None] | None = None,
    export: ExportRequest | None = None,
) -> Outcome:
    """Run the whole diagnosis once. Never raises for a source failure."""
    ctx = Context(subject, window, now, sources, observer or NullObserver(), org_scope,
                  export=export if export is not None else sources.export)
    state = RunState(logs_available=sources.logs is not None)
    steps = await run_steps(ctx, state, applicable(ctx, STEPS))
    return Outcome(assemble(ctx, state), steps)


def applicable(ctx: Context, steps: Sequence[Step]) -> tuple[Step, ...]:
    """The steps this diagnosis has (an export step only with an export), each needing
    only steps that are there."""
    kept = [s for s in steps if s.applies is None or s.applies(ctx)]
    names = {s.name for s in kept}
    return tuple(replace(s, needs=tuple(n for n in s.needs if n in names)) for s in kept)
