"""A diagnosis waits only for what it depends on: the traces and the instances' logs that
the billing rows name are asked while Loki is still looking for the correlation id (one
round trip); what only the logs name costs one more; each is asked once; a run that is
cut short leaves no request behind.

The sources here are the demo platform's offline logs and traces behind a gate: a request
is held until every request of its round trip has arrived. A flow that waited for one
answer before asking the next would never finish (each test has a timeout)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from typing import Any, ClassVar

import pytest

from bot.diagnosis import core
from bot.diagnosis.model import LogEvent, Span, Subject, Window
from bot.flows.diagnosis import SourceSet, diagnose
from bot.flows.diagnosis.context import Context
from bot.flows.diagnosis.leads import MAX_PIVOT_INSTANCES, MAX_TRACES, Leads
from bot.sources.billing import PostgresBillingReader
from bot.sources.logql import LogQuery
from bot.sources.offline import OfflineEvidence
from bot.sources.protocols import Fetched, LogSource, TraceSource
from tests.conftest import LoadedPlatform
from tests.constants import NOW

WINDOW = Window(NOW - timedelta(days=7), NOW)
TIMEOUT_S = 30


class Gate:
    """Holds each Loki/Tempo request until every request of its round trip has arrived."""

    def __init__(self, rounds: list[set[str]]) -> None:
        self.rounds = rounds
        self.asked: list[str] = []
        self.full = [asyncio.Event() for _ in rounds]

    async def enter(self, what: str) -> None:
        self.asked.append(what)
        n = next(i for i, r in enumerate(self.rounds) if what in r)
        if self.rounds[n] <= set(self.asked):
            self.full[n].set()
        await self.full[n].wait()


class GatedLogs:
    def __init__(self, inner: LogSource, gate: Gate) -> None:
        self.inner, self.gate, self.label = inner, gate, "gated logs"

    async def query(self, q: LogQuery, window: Window) -> Fetched[LogEvent]:
        await self.gate.enter(f"loki {q.field}={q.value}")
        return await self.inner.query(q, window)


class GatedTraces:
    def __init__(self, inner: TraceSource, gate: Gate) -> None:
        self.inner, self.gate, self.label = inner, gate, "gated traces"

    async def get_trace(self, trace_id: str, window: Window) -> Fetched[Span]:
        await self.gate.enter(f"tempo {trace_id}")
        return await self.inner.get_trace(trace_id, window)


async def run(loaded: LoadedPlatform, gate: Gate, cid: str) -> Any:
    evidence = OfflineEvidence(loaded.evidence)
    reader = PostgresBillingReader(loaded.billing_url, statement_timeout_ms=10_000)
    try:
        sources = SourceSet(GatedLogs(evidence.logs, gate), GatedTraces(evidence.traces, gate), reader)
        return await asyncio.wait_for(diagnose(Subject(correlation_id=cid), WINDOW, NOW, sources), TIMEOUT_S)
    finally:
        await reader.aclose()


def named(loaded: LoadedPlatform, cid: str, where: Callable[[Any], bool]) -> tuple[set[str], set[str]]:
    """The instances and trace ids that ``cid``'s usage rows (or log lines) name."""
    p = loaded.platform
    items = [u for u in p.usage if u.correlation_id == cid] + [e for e in p.logs if e.correlation_id == cid]
    items = [x for x in items if where(x)]
    return {x.app_instance_id for x in items if x.app_instance_id}, {x.trace_id for x in items if x.trace_id}


async def test_rows_naming_everything_cost_one_round_trip(demo_loaded: LoadedPlatform) -> None:
    cid = demo_loaded.platform.disputed_correlation_id
    assert cid is not None
    instances, traces = named(demo_loaded, cid, lambda x: not isinstance(x, LogEvent))
    assert len(instances) == 4 and len(traces) == 1
    one = {f"loki correlation_id={cid}", *(f"tempo {t}" for t in traces),
           *(f"loki app_instance_id={i}" for i in instances)}
    gate = Gate([one])
    outcome = await run(demo_loaded, gate, cid)
    assert sorted(gate.asked) == sorted(one)  # all in flight at once, each once
    assert outcome.diagnosis.complete and outcome.diagnosis.findings


async def test_what_only_the_logs_name_costs_one_more_round_trip(demo_loaded: LoadedPlatform) -> None:
    p = demo_loaded.platform
    cid = next(c.correlation_id for c in p.calls if not [u for u in p.usage if u.correlation_id == c.correlation_id])
    instances, traces = named(demo_loaded, cid, lambda x: isinstance(x, LogEvent))
    assert instances and traces
    second = {*(f"tempo {t}" for t in traces), *(f"loki app_instance_id={i}" for i in instances)}
    gate = Gate([{f"loki correlation_id={cid}"}, second])
    outcome = await run(demo_loaded, gate, cid)
    assert sorted(gate.asked[1:]) == sorted(second)
    assert outcome.diagnosis.trace_ids == sorted(traces)


class Never:
    """A log and trace source whose every request waits until it is cancelled."""

    label = "never"

    def __init__(self) -> None:
        self.asked: list[str] = []
        self.cancelled: list[str] = []
        self.tempo_asked = asyncio.Event()

    async def _wait(self, what: str) -> None:
        self.asked.append(what)
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled.append(what)
            raise

    async def query(self, q: LogQuery, window: Window) -> Fetched[LogEvent]:
        await self._wait(q.value)
        raise AssertionError("unreachable")

    async def get_trace(self, trace_id: str, window: Window) -> Fetched[Span]:
        self.tempo_asked.set()
        await self._wait(trace_id)
        raise AssertionError("unreachable")


async def test_a_run_cut_short_leaves_no_request_behind(demo_loaded: LoadedPlatform) -> None:
    cid = demo_loaded.platform.disputed_correlation_id
    assert cid is not None
    before = asyncio.all_tasks()
    src = Never()
    reader = PostgresBillingReader(demo_loaded.billing_url, statement_timeout_ms=10_000)
    try:
        task = asyncio.create_task(diagnose(Subject(correlation_id=cid), WINDOW, NOW, SourceSet(src, src, reader)))
        await asyncio.wait_for(src.tempo_asked.wait(), TIMEOUT_S)  # the rows' trace is asked while Loki looks
        task.cancel()  # what a timeout does
        with pytest.raises(asyncio.CancelledError):
            await task
    finally:
        await reader.aclose()
    assert asyncio.all_tasks() <= before
    assert cid in src.asked and len(src.asked) > 2  # the logs, the trace, the instances' logs
    assert sorted(src.cancelled) == sorted(src.asked)


async def test_leads_ask_each_thing_once_within_the_caps() -> None:
    src = Never()
    leads = Leads(src, src, WINDOW, eager=True)
    tids = [f"{n:032x}" for n in range(MAX_TRACES + 5)]
    leads.start_traces(tids[:3])
    leads.start_traces(tids)
    iids = [f"ai-{n:04d}" for n in range(MAX_PIVOT_INSTANCES + 5)]
    leads.start_instances(iids)
    leads.start_instances(iids[:2])
    await asyncio.sleep(0)  # let the tasks start
    assert list(leads.traces) == tids[:MAX_TRACES]
    assert list(leads.instances) == iids[:MAX_PIVOT_INSTANCES]
    assert sorted(src.asked) == sorted([*tids[:MAX_TRACES], *iids[:8]])  # 8 Loki requests at once
    await leads.aclose()
    assert all(t.cancelled() for t in [*leads.traces.values(), *leads.instances.values()])


async def test_in_the_runbook_order_nothing_is_asked_before_its_step() -> None:
    src = Never()
    ctx = Context(Subject(correlation_id="c-1"), WINDOW, NOW, SourceSet(src, src, None, sequential=True),
                  observer=None)  # type: ignore[arg-type]
    ctx.leads.saw(core.named(logs=[LogEvent(ts=NOW, service="api", event="x", line={"trace_id": "a" * 32,
                                                                                   "app_instance_id": "ai-1"})]))
    assert not ctx.leads.traces and not ctx.leads.instances
    org = Context(Subject(org_id="o"), WINDOW, NOW, SourceSet(src, src, None), observer=None,  # type: ignore[arg-type]
                  org_scope=("o", None))
    org.leads.start_instances(["ai-1"])  # an org's instances are screened in the database, not read one by one
    assert not org.leads.instances


class Held:
    """Log and trace sources whose every request waits for ``release``."""

    label = "held"

    def __init__(self, inner: OfflineEvidence) -> None:
        self.inner, self.release = inner, asyncio.Event()

    async def query(self, q: LogQuery, window: Window) -> Fetched[LogEvent]:
        await self.release.wait()
        return await self.inner.logs.query(q, window)

    async def get_trace(self, trace_id: str, window: Window) -> Fetched[Span]:
        await self.release.wait()
        return await self.inner.traces.get_trace(trace_id, window)


class CountingReader:
    """The billing reader, counting each read it answered; ``read_ahead`` is set once the
    reads of steps 4 to 6 have all answered."""

    AHEAD: ClassVar[set[str]] = {"app_instances", "components", "usage_for_instances", "billing_accounts", "rate_cards",
             "ledger_for_usage", "orphan_debits_by_correlation"}

    def __init__(self, inner: PostgresBillingReader) -> None:
        self.inner, self.read_ahead = inner, asyncio.Event()
        self.answered: list[str] = []

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if not callable(attr) or name.startswith("_"):
            return attr

        async def read(*args: Any, **kwargs: Any) -> Any:
            got = await attr(*args, **kwargs)
            self.answered.append(name)
            if set(self.answered) >= self.AHEAD:
                self.read_ahead.set()
            return got

        read.__name__ = name
        return read


async def test_the_billing_reads_of_the_last_steps_are_done_while_loki_and_tempo_are_out(
        demo_loaded: LoadedPlatform) -> None:
    """The rows name every instance: the pivot's, the attribution's and the reconciliation's
    billing reads are asked for them at once, and each is taken by its step (never asked
    twice); the findings are the runbook order's."""
    cid = demo_loaded.platform.disputed_correlation_id
    assert cid is not None
    held = Held(OfflineEvidence(demo_loaded.evidence))
    reader = CountingReader(PostgresBillingReader(demo_loaded.billing_url, statement_timeout_ms=10_000))
    try:
        sources = SourceSet(held, held, reader)  # type: ignore[arg-type]
        task = asyncio.create_task(diagnose(Subject(correlation_id=cid), WINDOW, NOW, sources))
        await asyncio.wait_for(reader.read_ahead.wait(), TIMEOUT_S)  # Loki and Tempo have not answered yet
        held.release.set()
        outcome = await asyncio.wait_for(task, TIMEOUT_S)
        evidence = OfflineEvidence(demo_loaded.evidence)
        runbook = await diagnose(Subject(correlation_id=cid), WINDOW, NOW,
                                 SourceSet(evidence.logs, evidence.traces, reader.inner, sequential=True))
    finally:
        await reader.inner.aclose()
    assert sorted(reader.answered) == sorted(set(reader.answered))  # each read once
    assert outcome.diagnosis.findings == runbook.diagnosis.findings and outcome.diagnosis.findings
    # each step shows the same calls as in the runbook's order
    for ours, theirs in zip(outcome.steps, runbook.steps, strict=True):
        assert ours.name == theirs.name
        assert sorted(str((c.source, c.request, c.params)) for c in ours.calls) == \
            sorted(str((c.source, c.request, c.params)) for c in theirs.calls), ours.name
