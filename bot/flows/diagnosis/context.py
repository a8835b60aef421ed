"""What every step may use: the subject, the window, the sources, the observer, and the
one way to call a source (``Context.call``: a failure becomes a note and a partial step,
never an exception; every call, answered or not, goes to the observer; ``settle`` does
the same for a read started earlier, one of ``leads``; ``billing`` calls a billing
reader's method, taking the same read if ``ahead`` started it). And ``Step``, the shape of
one runbook step."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ParamSpec, TypeVar

from bot.diagnosis.model import SourceState, Subject, Window
from bot.errors import SourceFailure
from bot.export.request import ExportFetch, ExportRequest
from bot.flows.diagnosis.ahead import Ahead
from bot.flows.diagnosis.leads import Leads
from bot.flows.diagnosis.state import RunState
from bot.flows.steps_report import Observer, StepReport
from bot.sources.protocols import BillingReader, Fetched, LogSource, SourceCall, TraceSource

T = TypeVar("T")
P = ParamSpec("P")
Source = str  # "loki" | "tempo" | "billing"


@dataclass(slots=True)
class SourceSet:
    """The three sources; ``None`` means not configured, with the reason why."""

    logs: LogSource | None
    traces: TraceSource | None
    billing: BillingReader | None
    missing: dict[str, str] = field(default_factory=dict)
    # work a long-running process does once before it takes requests (an evidence
    # folder's index), so that the first diagnosis does not do it in the middle of a storm
    warm_up: tuple[Callable[[], Awaitable[object]], ...] = ()
    # BILLING_EXPORT_URL: every diagnosis not given an export of its own fetches one
    export: ExportFetch | None = None
    # read in the runbook's order, one round trip after another, instead of asking for a
    # trace or an instance's logs as soon as any source names it (a fallback, and the
    # benchmark's baseline)
    sequential: bool = False

    async def prepare(self) -> None:
        for step in self.warm_up:
            await step()


@dataclass(slots=True)
class Context:
    """One diagnosis's fixed inputs and what it says about its sources as it goes."""

    subject: Subject
    window: Window
    now: datetime
    sources: SourceSet
    observer: Observer
    # a whole org (project): its instances come from the billing database, rows are screened
    org_scope: tuple[str, str | None] | None = None
    health: dict[Source, SourceState] = field(default_factory=lambda: {"loki": "ok", "tempo": "ok", "billing": "ok"})
    searched: list[str] = field(default_factory=list)  # what was looked up, for "no findings" answers
    notes: list[str] = field(default_factory=list)
    export: ExportRequest | None = None  # a usage export to reconcile (step "export")
    leads: Leads = field(init=False)  # traces and instances' logs, asked once, as soon as named
    ahead: Ahead = field(init=False)  # billing reads of steps 4 to 6, asked before their turn

    def __post_init__(self) -> None:
        # an org's instances have no logs worth reading one by one: the database screens them
        self.leads = Leads(self.sources.logs if self.org_scope is None else None, self.sources.traces, self.window,
                           eager=not self.sources.sequential)
        self.ahead = Ahead(eager=not self.sources.sequential)
        for name, reason in self.sources.missing.items():
            self.health[name] = "unavailable"
            self.notes.append(f"{name}: {reason}")

    def why_missing(self, source: Source) -> str:
        return self.sources.missing.get(source, "not configured")

    @property
    def span_label(self) -> str:
        """The window's length as a person says it: ``7d``, ``6h``."""
        seconds = (self.window.end - self.window.start).total_seconds()
        return f"{seconds / 86400:g}d" if seconds >= 86400 else f"{seconds / 3600:g}h"

    def _fail(self, source: Source, exc: SourceFailure) -> None:
        if self.health[source] == "ok":
            self.health[source] = "unavailable" if exc.status == "unavailable" else "error"
        note = f"{source}: {exc.reason}"
        if note not in self.notes:
            self.notes.append(note)

    async def call(self, rep: StepReport, source: Source, make: Callable[[], Awaitable[Fetched[T]]],
                   describe: str) -> list[T] | None:
        """The items ``make`` fetched, or None when the source failed (said in ``rep``)."""
        return await self.settle(rep, source, make(), describe)

    async def billing(self, rep: StepReport, read: Callable[P, Awaitable[Fetched[T]]], *args: P.args,
                      **kwargs: P.kwargs) -> list[T] | None:
        """``call`` of a billing reader's method, named after it; the same read already
        under way (``ahead``) is taken instead of asked again."""
        name = getattr(read, "__name__", "billing")
        early = self.ahead.take(read, args, kwargs)
        if early is not None:
            return await self.settle(rep, "billing", early, name)
        return await self.call(rep, "billing", lambda: read(*args, **kwargs), name)

    async def settle(self, rep: StepReport, source: Source, read: Awaitable[Fetched[T]],
                     describe: str) -> list[T] | None:
        """``call`` for a read already under way (a task ``leads`` started)."""
        try:
            got = await read
        except SourceFailure as exc:
            self._fail(source, exc)
            rep.state = "partial"
            rep.lines.append(f"{describe}: {exc.status}: {exc.reason}")
            failed = SourceCall(source=source, kind="error", request=describe)
            await self.observer.source_call(rep.name, failed, [], f"{exc.status}: {exc.reason}")
            return None
        rep.calls.append(got.call)
        await self.observer.source_call(rep.name, got.call, got.items, None)
        return got.items


StepFn = Callable[["Context", RunState, StepReport], Coroutine[Any, Any, None]]


@dataclass(frozen=True, slots=True)
class Step:
    """One runbook step. ``fetch`` reads the sources into the state (it may run before
    the step's turn, once the steps it ``needs`` are done); ``report`` tells what the
    state now holds, in the step's turn (lines, findings; pure). ``then``: reading that
    must wait for the step's report, kept under the step's name."""

    name: str
    fetch: StepFn
    report: Callable[[Context, RunState, StepReport], None]
    needs: tuple[str, ...] = ()
    then: StepFn | None = None
    applies: Callable[[Context], bool] | None = None  # None: every diagnosis has this step
