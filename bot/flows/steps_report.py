"""What a diagnosis tells the world while it runs: the steps' titles, one ``StepReport``
per step, and the ``Observer`` that receives them (the Slack thread, the terminal, the
recorder, the metrics). The renderers and sinks import from here, never from the flow
that produces the reports (``bot.flows.diagnosis``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from bot.diagnosis.model import Correction, Finding, FollowUp, ImpactRow
from bot.sources.protocols import SourceCall

StepState = Literal["ok", "partial", "failed", "skipped"]

# The runbook's steps in the order a thread reads them (a new step adds its title here).
STEP_TITLES = {
    "logs": "Logs by correlation id",
    "billing_rows": "Billing rows by correlation id",
    "trace": "Trace stages",
    "pivot": "App-instance pivot",
    "attribution": "Attribution",
    "export": "Usage export",
    "reconciliation": "Reconciliation checklist",
}


@dataclass(slots=True)
class Verdict:
    """What the checks concluded, typed for every sink (JSON only at the store)."""

    impact: list[ImpactRow] = field(default_factory=list)
    follow_ups: list[FollowUp] = field(default_factory=list)
    corrections: list[Correction] = field(default_factory=list)
    by_check: dict[str, int] = field(default_factory=dict)  # check -> findings


@dataclass(slots=True)
class StepReport:
    """What one step did, for people: a title, a state and a few lines."""

    name: str
    title: str
    state: StepState = "ok"
    lines: list[str] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    calls: list[SourceCall] = field(default_factory=list)
    verdict: Verdict | None = None  # the reconciliation's conclusions
    of: int = 0  # how many steps this diagnosis has (an export step only with an export)


class Observer(Protocol):
    async def step_started(self, name: str, title: str) -> None: ...

    async def step_finished(self, report: StepReport) -> None: ...

    async def source_call(self, step: str, call: SourceCall, items: Sequence[Any], error: str | None) -> None: ...


class NullObserver:
    async def step_started(self, name: str, title: str) -> None:
        return None

    async def step_finished(self, report: StepReport) -> None:
        return None

    async def source_call(self, step: str, call: SourceCall, items: Sequence[Any], error: str | None) -> None:
        return None
