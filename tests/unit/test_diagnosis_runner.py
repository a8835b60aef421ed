"""The runner: steps are announced and reported in the list's order, while a step's
reading starts as soon as the steps it needs are done."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from bot.diagnosis.model import Subject, Window
from bot.flows.diagnosis import STEPS, SourceSet
from bot.flows.diagnosis.context import Context, Step
from bot.flows.diagnosis.runner import run_steps
from bot.flows.diagnosis.state import RunState
from bot.flows.steps_report import STEP_TITLES, StepReport
from bot.sources.protocols import SourceCall

T = datetime(2026, 11, 20, tzinfo=UTC)


class Events:
    def __init__(self) -> None:
        self.seen: list[str] = []

    async def step_started(self, name: str, title: str) -> None:
        self.seen.append(f"started {name}")

    async def step_finished(self, report: StepReport) -> None:
        self.seen.append(f"finished {report.name}")

    async def source_call(self, step: str, call: SourceCall, items: Sequence[Any], error: str | None) -> None:
        return None


def test_every_step_has_a_title_in_runbook_order() -> None:
    assert [s.name for s in STEPS] == list(STEP_TITLES)


async def test_independent_readings_start_at_once_and_the_thread_reads_in_order() -> None:
    events = Events()
    both_running = asyncio.Event()
    running: set[str] = set()

    def fetch(name: str, wait_for_other: bool) -> Any:
        async def run(ctx: Context, state: RunState, rep: StepReport) -> None:
            events.seen.append(f"fetch {name}")
            running.add(name)
            if len(running) == 2:
                both_running.set()
            if wait_for_other:
                await both_running.wait()  # would hang if billing_rows waited for logs

        return run

    def report(ctx: Context, state: RunState, rep: StepReport) -> None:
        rep.lines.append(f"reported {rep.name}")

    steps = [Step("logs", fetch("logs", True), report), Step("billing_rows", fetch("billing_rows", False), report),
             Step("trace", fetch("trace", False), report, needs=("logs", "billing_rows"))]
    ctx = Context(Subject(correlation_id="c-1"), Window(T, T), T, SourceSet(None, None, None), events)
    reports = await asyncio.wait_for(run_steps(ctx, RunState(logs_available=False), steps), timeout=10)
    assert [r.lines for r in reports] == [["reported logs"], ["reported billing_rows"], ["reported trace"]]
    # billing rows are read while logs are (logs could not finish otherwise); the trace's
    # reading waits for both steps it needs
    assert events.seen == ["started logs", "fetch logs", "fetch billing_rows", "finished logs",
                           "started billing_rows", "finished billing_rows",
                           "started trace", "fetch trace", "finished trace"]
