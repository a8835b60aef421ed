"""The correlation-first diagnosis, step by step, as the runbook has it.

1. ``logs``: Loki, every service's lines for the correlation id.
2. ``billing_rows``: usage rows and ledger entries that carry the correlation id.
3. ``trace``: the traces those name, read from Tempo; the four stages.
4. ``pivot``: every app instance the evidence names; Loki again by app_instance_id;
   the instances' metadata.
5. ``attribution``: the instances' usage rows in the window against their metadata.
6. ``reconciliation``: ledger entries, accounts and rate cards; the six checks.

A step that cannot read a source says so and the run goes on with what the other
sources support (``complete: false``). Every source call is handed to the observer
with what came back, so a recorder can keep it as evidence.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any, Protocol, TypeVar

from bot.diagnosis import core
from bot.diagnosis.checks import (
    ATTRIBUTION_CHECKS,
    RECONCILIATION_CHECKS,
    BillingEvidence,
    propose_corrections,
    run_checks,
    sort_findings,
)
from bot.diagnosis.followups import follow_ups
from bot.diagnosis.model import (
    AppInstance,
    BillingAccount,
    Component,
    Correction,
    Diagnosis,
    Finding,
    FollowUp,
    LedgerEntry,
    LogEvent,
    RateCard,
    Sources,
    SourceState,
    Span,
    Subject,
    UsageRecord,
    Window,
    WindowOut,
)
from bot.errors import SourceFailure
from bot.sources import logql
from bot.sources.protocols import BillingReader, Fetched, LogSource, SourceCall, TraceSource

log = logging.getLogger(__name__)
T = TypeVar("T")

MAX_TRACES = 20
MAX_PIVOT_INSTANCES = 50
PIVOT_CONCURRENCY = 8
FULL_READ_INSTANCES = 50

STEP_TITLES = {
    "logs": "Logs by correlation id",
    "billing_rows": "Billing rows by correlation id",
    "trace": "Trace stages",
    "pivot": "App-instance pivot",
    "attribution": "Attribution",
    "reconciliation": "Reconciliation checklist",
}


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

    async def prepare(self) -> None:
        for step in self.warm_up:
            await step()


@dataclass(slots=True)
class StepReport:
    """What one step did, for people: a title, a state and a few lines."""

    name: str
    title: str
    state: str = "ok"  # ok | partial | failed | skipped
    lines: list[str] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    calls: list[SourceCall] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)


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


@dataclass(slots=True)
class Outcome:
    diagnosis: Diagnosis
    steps: list[StepReport]


class _Run:
    def __init__(self, subject: Subject, window: Window, now: datetime, sources: SourceSet, observer: Observer,
                 org_scope: tuple[str, str | None] | None) -> None:
        self.subject = subject
        self.window = window
        self.now = now
        self.src = sources
        self.obs = observer
        self.org_scope = org_scope
        self.state: dict[str, SourceState] = {"loki": "ok", "tempo": "ok", "billing": "ok"}
        self.searched: list[str] = []
        self.notes: list[str] = []
        self.steps: list[StepReport] = []
        self.covered: dict[tuple[str, str], frozenset[datetime]] | None = None
        self.corrections: list[Correction] = []
        self.follow_ups: list[FollowUp] = []
        self.rows_examined = 0
        for name, reason in sources.missing.items():
            self.state[name] = "unavailable"
            self.notes.append(f"{name}: {reason}")

    # ------------------------------------------------------------ plumbing

    def _fail(self, source: str, exc: SourceFailure) -> None:
        if self.state[source] == "ok":
            self.state[source] = "unavailable" if exc.status == "unavailable" else "error"
        note = f"{source}: {exc.reason}"
        if note not in self.notes:
            self.notes.append(note)

    async def _call(self, step: StepReport, source: str, make: Callable[[], Awaitable[Fetched[T]]],
                    describe: str) -> list[T] | None:
        try:
            got = await make()
        except SourceFailure as exc:
            self._fail(source, exc)
            step.state = "partial"
            step.lines.append(f"{describe}: {exc.status}: {exc.reason}")
            failed = SourceCall(source=source, kind="error", request=describe)
            await self.obs.source_call(step.name, failed, [], f"{exc.status}: {exc.reason}")
            return None
        step.calls.append(got.call)
        await self.obs.source_call(step.name, got.call, got.items, None)
        return got.items

    async def _begin(self, name: str) -> StepReport:
        rep = StepReport(name=name, title=STEP_TITLES[name])
        await self.obs.step_started(name, rep.title)
        return rep

    async def _end(self, rep: StepReport) -> None:
        self.steps.append(rep)
        await self.obs.step_finished(rep)

    # ------------------------------------------------------------ steps

    async def run(self) -> Outcome:
        cid, aid = self.subject.correlation_id, self.subject.app_instance_id
        days = (self.window.end - self.window.start).total_seconds() / 86400
        span = f"{days:g}d" if days >= 1 else f"{(self.window.end - self.window.start).total_seconds() / 3600:g}h"

        # 1 and 2 read different sources and depend on nothing: both start at once and
        # are reported in order.
        corr_logs: list[LogEvent] = []
        corr_usage: list[UsageRecord] = []
        corr_ledger: list[LedgerEntry] = []
        logs_ok = self.src.logs is not None
        billing = self.src.billing
        rep_logs = StepReport(name="logs", title=STEP_TITLES["logs"])
        rep_rows = StepReport(name="billing_rows", title=STEP_TITLES["billing_rows"])

        async def read_logs() -> None:
            nonlocal corr_logs, logs_ok
            rep = rep_logs
            if cid is None:
                rep.state = "skipped"
                rep.lines.append("no correlation id: diagnosing from the app instance")
                return
            if self.src.logs is None:
                rep.state = "failed"
                rep.lines.append(f"logs unavailable: {self.src.missing.get('loki', 'not configured')}")
                return
            logs_src = self.src.logs
            q = logql.by_correlation_id(cid)
            got_logs = await self._call(rep, "loki", partial(logs_src.query, q, self.window), f"Loki {q.logql}")
            if got_logs is None:
                logs_ok = False
                return
            corr_logs = got_logs
            services = sorted({e.service for e in corr_logs})
            self.searched.append(f"Loki `{q.logql}` over {span}: {len(corr_logs)} lines")
            rep.lines.append(f"{len(corr_logs)} log lines from {', '.join(services) or 'no service'}")
            errors = [e for e in corr_logs if (e.get("level") or "").lower() == "error" or
                      e.event.endswith(("_failed", "_rejected"))]
            for e in errors[:5]:
                why = e.get("error") or e.get("msg")
                rep.lines.append(f"{e.ts:%Y-%m-%d %H:%M:%S} {e.service} {e.event}: {why}")
            rep.data["services"] = services

        async def read_rows() -> None:
            nonlocal corr_usage, corr_ledger
            rep = rep_rows
            if cid is None:
                rep.state = "skipped"
                rep.lines.append("no correlation id")
                return
            if billing is None:
                rep.state = "failed"
                rep.lines.append(f"billing database unavailable: {self.src.missing.get('billing', 'not configured')}")
                return
            got_u, got_l = await asyncio.gather(
                self._call(rep, "billing", partial(billing.usage_by_correlation, cid, self.window),
                           "usage_by_correlation"),
                self._call(rep, "billing", partial(billing.ledger_by_correlation, cid, self.window),
                           "ledger_by_correlation"),
            )
            corr_usage, corr_ledger = got_u or [], got_l or []
            known = {u.usage_record_id for u in corr_usage}
            refs = sorted({e.usage_record_id for e in corr_ledger if e.usage_record_id} - known)
            if refs:
                extra = await self._call(rep, "billing", partial(billing.usage_by_ids, refs), "usage_by_ids")
                corr_usage.extend(extra or [])
            self.searched.append(f"usage_records by correlation_id: {len(corr_usage)} rows")
            self.searched.append(f"ledger_entries by correlation_id: {len(corr_ledger)} entries")
            rep.lines.append(f"{len(corr_usage)} usage rows, {len(corr_ledger)} ledger entries carry the id")

        logs_task = asyncio.create_task(read_logs())
        rows_task = asyncio.create_task(read_rows())
        for rep_, task in ((rep_logs, logs_task), (rep_rows, rows_task)):
            await self.obs.step_started(rep_.name, rep_.title)
            await task
            await self._end(rep_)

        # 3. traces
        spans: list[Span] | None = []
        rep = await self._begin("trace")
        _, trace_ids = core.identifiers(corr_logs, corr_usage, [], [])
        if aid and not cid:
            trace_ids = []  # filled after the pivot from the instance's own rows
        tempo = self.src.traces
        if tempo is None:
            spans = None
            rep.state = "failed"
            rep.lines.append(f"traces unavailable: {self.src.missing.get('tempo', 'not configured')}")
        elif not trace_ids and cid:
            rep.lines.append("no trace id in the evidence")
            self.searched.append("Tempo: no trace id to look up")
        else:
            spans = await self._fetch_traces(rep, tempo, trace_ids[:MAX_TRACES])
        await self._end(rep)

        # 4. pivot
        rep = await self._begin("pivot")
        ids, _ = core.identifiers(corr_logs, corr_usage, corr_ledger, spans or [],
                                  [aid] if aid else [])
        instance_ids = list(ids.app_instance_ids)
        instances: list[AppInstance] = []
        comps: list[Component] = []
        pivot_logs: list[LogEvent] = []
        if billing is not None and self.org_scope is not None:
            org, project = self.org_scope
            got_i = await self._call(rep, "billing", lambda: billing.instances_in_scope(org, project, self.window),
                                     "instances_in_scope")
            instances = got_i or []
            instance_ids = sorted({*instance_ids, *(i.app_instance_id for i in instances)})
        if len(instance_ids) > MAX_PIVOT_INSTANCES and self.org_scope is None:
            self.notes.append(f"{len(instance_ids)} app instances named; pivoting on the first {MAX_PIVOT_INSTANCES}")
            instance_ids = instance_ids[:MAX_PIVOT_INSTANCES]
        pivot_rep = rep

        async def read_metadata() -> None:
            nonlocal instances, comps
            if billing is None or not instance_ids:
                return
            if not instances:
                got_i, got_c = await asyncio.gather(
                    self._call(pivot_rep, "billing", partial(billing.app_instances, instance_ids), "app_instances"),
                    self._call(pivot_rep, "billing", partial(billing.components, instance_ids), "components"),
                )
                instances = got_i or []
            else:
                got_c = await self._call(pivot_rep, "billing", partial(billing.components, instance_ids),
                                         "components")
            comps = got_c or []

        async def read_pivot_logs(logs_src: LogSource, iid: str) -> list[LogEvent] | None:
            q = logql.by_app_instance_id(iid)
            async with limit:
                return await self._call(pivot_rep, "loki", partial(logs_src.query, q, self.window), f"Loki {q.logql}")

        limit = asyncio.Semaphore(PIVOT_CONCURRENCY)
        pivot_src = self.src.logs if self.org_scope is None else None
        results = await asyncio.gather(
            read_metadata(), *(read_pivot_logs(pivot_src, iid) for iid in instance_ids if pivot_src is not None)
        )
        for got in results[1:]:
            if got is None:
                logs_ok = False
            else:
                pivot_logs.extend(got)
        if pivot_src is not None and instance_ids:
            self.searched.append(f"Loki by app_instance_id for {len(instance_ids)} instance(s): "
                                 f"{len(pivot_logs)} lines")
        found = {i.app_instance_id for i in instances}
        unknown = [i for i in instance_ids if i not in found]
        rep.lines.append(f"{len(instance_ids)} app instance(s): {', '.join(instance_ids[:12]) or 'none'}"
                         + (" …" if len(instance_ids) > 12 else ""))
        if unknown and billing is not None and self.state["billing"] == "ok":
            rep.lines.append(f"not in billing.app_instances: {', '.join(unknown[:10])}")
        rep.data["instances"] = [i.app_instance_id for i in instances]
        await self._end(rep)

        # 3b. an app instance subject: its own traces, now that its rows are known
        # 5. attribution: rules 1 to 3 need the rows, the metadata and the prices, no ledger
        rep = await self._begin("attribution")
        usage: list[UsageRecord] = []
        accounts: list[BillingAccount] = []
        cards: list[RateCard] = []
        attribution: list[Finding] = []
        if billing is None:
            rep.state = "failed"
            rep.lines.append("billing database unavailable")
        else:
            ids_ = [i.app_instance_id for i in instances]
            attr_rep = rep
            orgs = sorted({i.org_id for i in instances} | {u.org_id for u in corr_usage}
                          | {e.org_id for e in corr_ledger})

            async def read_prices() -> tuple[list[BillingAccount], list[RateCard]]:
                if not orgs:
                    return [], []
                accts = await self._call(attr_rep, "billing", partial(billing.billing_accounts, orgs),
                                         "billing_accounts") or []
                currencies = sorted({a.currency for a in accts})
                return accts, await self._call(attr_rep, "billing", partial(billing.rate_cards, currencies),
                                               "rate_cards") or []

            async def read_usage() -> None:
                nonlocal usage
                if instances and self.screened(len(instances)):
                    # at scale the database screens the rows; only the doubtful ones come back
                    got_u, got_cov = await asyncio.gather(
                        self._call(attr_rep, "billing", partial(billing.suspect_usage, ids_, self.window),
                                   "suspect_usage"),
                        self._call(attr_rep, "billing", partial(billing.usage_coverage, ids_, self.window),
                                   "usage_coverage"),
                    )
                    usage = got_u or []
                    self.covered = {(c.app_instance_id, c.component): frozenset(c.hours) for c in got_cov or []}
                    self.rows_examined = sum(c.rows for c in got_cov or [])
                elif instances:
                    usage = await self._call(attr_rep, "billing",
                                             partial(billing.usage_for_instances, ids_, self.window),
                                             "usage_for_instances") or []
                    self.rows_examined = len(usage)

            (accounts, cards), _ = await asyncio.gather(read_prices(), read_usage())
            seen = {u.usage_record_id for u in usage}
            # screened: the database already saw every row of the instances in scope
            in_scope = {i.app_instance_id for i in instances} if self.covered is not None else set()
            usage.extend(u for u in corr_usage if u.usage_record_id not in seen and u.app_instance_id not in in_scope)
            for i in instances[:12]:
                rep.lines.append(
                    f"{i.app_instance_id}: {i.operating_mode}, {i.runtime_backend}, control plane "
                    f"{i.control_plane_scope}, {i.org_id}/{i.project_id}"
                )
            if len(instances) > 12:
                rep.lines.append(f"… and {len(instances) - 12} more")
            screened = (f" (screened in the database: {len(usage):,} need a closer look)"
                        if self.covered is not None else "")
            rep.lines.append(f"{self.rows_examined:,} usage rows in the window{screened}; {len(cards)} rate cards in "
                             f"{', '.join(sorted({a.currency for a in accounts})) or 'no currency'}")
            if instances:
                attribution = run_checks(self._evidence(instances, comps, usage, [], accounts, cards,
                                                        [*corr_logs, *pivot_logs], logs_ok), ATTRIBUTION_CHECKS)
            if self.state["billing"] != "ok":
                rep.state = "partial"
        rep.findings = attribution
        await self._end(rep)

        if aid and not cid and tempo is not None and spans is not None:
            # an app instance subject: its own traces, now that its rows are known
            tids = sorted({u.trace_id.lower() for u in usage if u.trace_id})[:MAX_TRACES]
            if tids:
                spans.extend(await self._fetch_traces(rep, tempo, tids) or [])

        # 6. reconciliation: the ledger against the rows; completeness; uniqueness
        rep = await self._begin("reconciliation")
        findings: list[Finding] = list(attribution)
        if billing is not None and (instances or corr_ledger):
            row_ids = [u.usage_record_id for u in usage]
            pairs = sorted({(i.org_id, i.project_id) for i in instances}
                           | {(e.org_id, e.project_id) for e in corr_ledger})
            if self.org_scope is not None:
                orphan_call = self._call(rep, "billing", partial(billing.orphan_debits, pairs, self.window),
                                         "orphan_debits")
            else:
                # debits of the subject's calls whose usage row does not exist
                cids = sorted({c for c in (cid, *(u.correlation_id for u in usage)) if c})
                orphan_call = self._call(rep, "billing",
                                         partial(billing.orphan_debits_by_correlation, cids, self.window),
                                         "orphan_debits_by_correlation")
            got_ledger, got_orphans = await asyncio.gather(
                self._call(rep, "billing", partial(billing.ledger_for_usage, row_ids), "ledger_for_usage"),
                orphan_call,
            )
            ledger, orphans = got_ledger or [], got_orphans or []
            have = {e.ledger_entry_id for e in ledger}
            for entry in [*orphans, *corr_ledger]:
                if entry.ledger_entry_id not in have:
                    ledger.append(entry)
                    have.add(entry.ledger_entry_id)
            rep.lines.append(f"{len(ledger)} ledger entries ({len(orphans)} debit(s) without a usage row)")
            if not logs_ok and instances:
                self.notes.append("logs unavailable: the owning layer of missing usage is not confirmed")
            ev = self._evidence(instances, comps, usage, ledger, accounts, cards, [*corr_logs, *pivot_logs], logs_ok)
            findings = sort_findings([*attribution, *run_checks(ev, RECONCILIATION_CHECKS)])
            self.corrections = propose_corrections(ev, findings)
        self.follow_ups = follow_ups(findings)
        rep.findings = findings
        rep.data["impact"] = [r.model_dump(mode="json") for r in core.impact_of(findings)]
        rep.data["follow_ups"] = [f.model_dump(mode="json") for f in self.follow_ups]
        rep.data["corrections"] = [c.model_dump(mode="json") for c in self.corrections]
        by_check: dict[str, int] = {}
        for f in findings:
            by_check[f.check] = by_check.get(f.check, 0) + 1
        rep.data["by_check"] = by_check
        if billing is None:
            rep.state = "failed"
        elif self.state["billing"] != "ok":
            rep.state = "partial"
        await self._end(rep)

        return Outcome(self._assemble(corr_logs, corr_usage, corr_ledger, spans, instances, findings), self.steps)

    async def _fetch_traces(self, rep: StepReport, tempo: TraceSource, trace_ids: Sequence[str]) -> list[Span] | None:
        spans: list[Span] = []
        failed = 0
        fetched = await asyncio.gather(*(
            self._call(rep, "tempo", partial(tempo.get_trace, tid, self.window), f"Tempo trace {tid}")
            for tid in trace_ids
        ))
        for tid, got in zip(trace_ids, fetched, strict=True):
            if got is None:
                failed += 1
                continue
            if not got:
                rep.lines.append(f"trace {tid}: not found")
            spans.extend(got)
        self.searched.append(f"Tempo: {len(trace_ids)} trace(s), {len(spans)} spans")
        if failed == len(trace_ids) and trace_ids:
            return None
        st = core.stages(spans, [])
        rep.lines.append(
            f"lifecycle {st.app_lifecycle}, outbox {st.outbox_publish}, billing worker {st.billing_worker}"
        )
        for s in spans:
            if s.status == "error":
                rep.lines.append(f"error span: {s.service} {s.name} ({s.trace_id[:8]}…)")
        return spans

    def _evidence(self, instances: list[AppInstance], comps: list[Component], usage: list[UsageRecord],
                  ledger: list[LedgerEntry], accounts: list[BillingAccount], cards: list[RateCard],
                  logs: list[LogEvent], logs_ok: bool) -> BillingEvidence:
        return BillingEvidence(window=self.window, now=self.now, instances=instances, components=comps, usage=usage,
                               ledger=ledger, accounts=accounts, rate_cards=cards, logs=logs,
                               logs_available=logs_ok and self.org_scope is None, covered=self.covered)

    def screened(self, n_instances: int) -> bool:
        """Read every row (complete evidence) up to a few dozen instances; screen beyond."""
        return self.org_scope is not None or n_instances > FULL_READ_INSTANCES

    def _assemble(self, corr_logs: list[LogEvent], corr_usage: list[UsageRecord], corr_ledger: list[LedgerEntry],
                  spans: list[Span] | None, instances: list[AppInstance], findings: list[Finding]) -> Diagnosis:
        ids, trace_ids = core.identifiers(
            corr_logs, corr_usage, corr_ledger, spans or [],
            [i.app_instance_id for i in instances] + [a for a in (self.subject.app_instance_id,) if a],
        )
        orgs = set(ids.org_ids) | {i.org_id for i in instances}
        projects = set(ids.project_ids) | {i.project_id for i in instances}
        ids.org_ids, ids.project_ids = sorted(orgs), sorted(projects)
        complete = all(v == "ok" for v in self.state.values())
        scope = core.scope_of(findings)
        if not findings and not corr_logs and not corr_usage and not corr_ledger and not instances:
            self.notes.append("no evidence found for the subject in any source searched")
        return Diagnosis(
            subject=self.subject,
            window=WindowOut(start=self.window.start, end=self.window.end),
            trace_ids=trace_ids,
            identifiers=ids,
            scope=scope,
            freeze_recommended=core.freeze_recommended(findings),
            stages=core.stages(spans, corr_logs),
            findings=findings,
            impact=core.impact_of(findings),
            sources=Sources(loki=self.state["loki"], tempo=self.state["tempo"], billing=self.state["billing"]),
            complete=complete,
            searched=self.searched,
            notes=self.notes,
            follow_ups=self.follow_ups,
            corrections=self.corrections,
        )


async def diagnose(
    subject: Subject,
    window: Window,
    now: datetime,
    sources: SourceSet,
    observer: Observer | None = None,
    org_scope: tuple[str, str | None] | None = None,
) -> Outcome:
    """Run the whole diagnosis once. Never raises for a source failure."""
    return await _Run(subject, window, now, sources, observer or NullObserver(), org_scope).run()
