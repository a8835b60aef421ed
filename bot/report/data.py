"""Everything an incident report shows, read from the store in one consistent snapshot.

``load_report(pool, incident_id)`` returns an ``IncidentReport`` (or None for an unknown
incident): the incident; its diagnosis runs (the newest finished one's result parsed as a
``Diagnosis``); the timeline in order; the evidence grouped by run and phase, with the
rows kept and a before/after comparison per query; the findings and the customer impact
of the latest diagnosis; usage against ledger per app instance; approval prompts with
their votes and audit; the incident's freezes; its follow-up tickets (GitHub or Jira,
``bot.tracker``); and its sealed correction batches with the latest diagnosis's proposals
when none of them is from its run (``bot.report.corrections``). Queries: ``bot/report/sql/``.

**Usage against ledger**: ``bot.report.charges``. **Org / project**: the incident's own,
else the one org and project all the latest diagnosis's findings sit in.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg
from pydantic import ValidationError

from bot.diagnosis.model import Diagnosis, Finding, ImpactRow
from bot.errors import StoreError
from bot.flows.steps_report import STEP_TITLES
from bot.report.charges import InstanceCharge, UsageVsLedger, usage_vs_ledger
from bot.report.corrections import ReportCorrections, SealedBatch, report_corrections
from bot.sqlfiles import Queries
from bot.store.db import Pool, canonical_json
from bot.store.store import EvidenceRecord, Incident, TimelineEvent
from bot.tracker.model import safe_key, safe_url

Q = Queries("bot.report", "sql")
_DB_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError)
STEP_ORDER = tuple(STEP_TITLES)


@dataclass(frozen=True, slots=True)
class RunSummary:
    run_id: int
    status: str
    complete: bool | None
    scope: str | None
    freeze_recommended: bool | None
    findings: int
    checks: tuple[str, ...]
    error: str | None
    window_start: datetime
    window_end: datetime
    started_at: datetime
    finished_at: datetime | None
    duration_ms: float | None


@dataclass(frozen=True, slots=True)
class QueryComparison:
    """One query (step, request, params) of a run: what it returned before and after."""

    step: str
    source: str
    kind: str
    request: str
    params: dict[str, Any]
    before_count: int | None  # None: not asked in that phase
    before_digests: tuple[str, ...]
    after_count: int | None
    after_digests: tuple[str, ...]

    @property
    def status(self) -> str:
        """``unchanged``, ``changed``, ``before only``, ``after only``."""
        if self.after_count is None:
            return "before only"
        if self.before_count is None:
            return "after only"
        same = self.before_count == self.after_count and self.before_digests == self.after_digests
        return "unchanged" if same else "changed"


@dataclass(frozen=True, slots=True)
class RunEvidence:
    run_id: int | None
    before: tuple[EvidenceRecord, ...]
    after: tuple[EvidenceRecord, ...]
    comparisons: tuple[QueryComparison, ...]

    @property
    def has_after(self) -> bool:
        return bool(self.after)


@dataclass(frozen=True, slots=True)
class Vote:
    user_id: str
    vote: str
    via: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ApprovalEvent:
    event_id: int
    type: str
    user_id: str | None
    vote: str | None
    via: str | None
    details: dict[str, Any]
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ApprovalPrompt:
    prompt_id: int
    kind: str
    channel: str
    thread_ts: str | None
    message_ts: str | None
    scope: dict[str, Any]
    reason: str
    quorum: int
    status: str
    freeze_id: int | None
    created_at: datetime
    expires_at: datetime
    decided_at: datetime | None
    decided_by: tuple[str, ...]
    votes: tuple[Vote, ...]
    events: tuple[ApprovalEvent, ...]


@dataclass(frozen=True, slots=True)
class FreezeScope:
    org_id: str
    project_id: str | None
    app_instance_id: str | None

    def label(self) -> str:
        return "/".join(x for x in (self.org_id, self.project_id, self.app_instance_id) if x)


@dataclass(frozen=True, slots=True)
class Freeze:
    freeze_id: int
    status: str
    reason: str
    approved_by: tuple[str, ...]
    prompt_id: int | None
    frozen_at: datetime
    lifted_at: datetime | None
    lifted_by: tuple[str, ...]
    lift_prompt_id: int | None
    scopes: tuple[FreezeScope, ...]


@dataclass(frozen=True, slots=True)
class FollowUpTicket:
    """A follow-up ticket as stored. The tracker's answers are hostile: ``key`` is None
    unless it has a ticket key's shape, ``url`` None unless it is a plain http(s) URL."""

    layer: str
    tracker: str
    target: str
    key: str | None
    url: str | None
    state: str  # creating | open | recovered
    created_at: datetime | None
    updated_at: datetime

    @classmethod
    def of(cls, row: Mapping[str, Any]) -> FollowUpTicket:
        return cls(layer=row["owning_layer"], tracker=row["tracker"], target=row["target"],
                   key=safe_key(row["key"]), url=safe_url(row["url"]), state=row["state"],
                   created_at=row["created_at"], updated_at=row["updated_at"])


@dataclass(frozen=True, slots=True)
class IncidentReport:
    incident: Incident
    runs: tuple[RunSummary, ...]
    latest_run_id: int | None  # the newest run with a parsed result
    diagnosis: Diagnosis | None
    diagnosis_error: str | None  # the stored result did not parse
    timeline: tuple[TimelineEvent, ...]
    evidence: tuple[RunEvidence, ...]
    usage_vs_ledger: UsageVsLedger
    prompts: tuple[ApprovalPrompt, ...]
    freezes: tuple[Freeze, ...]
    notes: tuple[str, ...] = field(default=())
    tickets: tuple[FollowUpTicket, ...] = field(default=())
    org_id: str | None = None  # the incident's, else the one its findings name (module doc)
    project_id: str | None = None
    corrections: ReportCorrections = field(default_factory=ReportCorrections)

    @property
    def findings(self) -> list[Finding]:
        return list(self.diagnosis.findings) if self.diagnosis else []

    @property
    def impact(self) -> list[ImpactRow]:
        rows = list(self.diagnosis.impact) if self.diagnosis else []
        return sorted(rows, key=lambda r: (r.org_id, r.project_id, r.app_instance_id or "", r.currency))

    @property
    def active_freezes(self) -> list[Freeze]:
        return [f for f in self.freezes if f.status == "active"]


# ---------------------------------------------------------------- loading


def _jsonish(value: Any) -> Any:
    """jsonb as decoded by the store's codec; a text value (another codec) parsed."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def _fields(row: Mapping[str, Any], names: Iterable[str], jsonb: Sequence[str]) -> dict[str, Any]:
    return {k: (_jsonish(row[k]) if k in jsonb else row[k]) for k in names}


def _ts(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))


async def load_report(store_pool: Pool, incident_id: str) -> IncidentReport | None:
    """The report of ``incident_id``, or None when there is no such incident."""
    try:
        async with store_pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
            inc = await conn.fetchrow(Q["report_incident"], incident_id)
            if inc is None:
                return None
            runs = await conn.fetch(Q["report_runs"], incident_id)
            timeline = await conn.fetch(Q["report_timeline"], incident_id)
            evidence = await conn.fetch(Q["report_evidence"], incident_id)
            prompts = await conn.fetch(Q["report_prompts"], incident_id)
            events = await conn.fetch(Q["report_approval_events"], incident_id)
            freezes = await conn.fetch(Q["report_freezes"], incident_id)
            tickets = await conn.fetch(Q["report_tickets"], incident_id)
            batches = await conn.fetch(Q["report_correction_batches"], incident_id)
            batch_rows = await conn.fetch(Q["report_correction_rows"], incident_id)
    except _DB_ERRORS as exc:
        raise StoreError(f"cannot read the report of {incident_id}: {exc}") from exc
    rows = [[dict(r) for r in rs] for rs in (runs, timeline, evidence, prompts, events, freezes)]
    return build_report(dict(inc), rows[0], rows[1], rows[2], rows[3], rows[4], rows[5],
                        tickets=[dict(t) for t in tickets], corrections=([dict(b) for b in batches],
                                                                         [dict(c) for c in batch_rows]))


def _run_summary(r: Mapping[str, Any]) -> RunSummary:
    result = _jsonish(r["result"])
    findings: list[Any] = result.get("findings", []) if isinstance(result, dict) else []
    checks: list[str] = []
    for f in findings:
        c = f.get("check") if isinstance(f, dict) else None
        if isinstance(c, str) and c not in checks:
            checks.append(c)
    return RunSummary(
        run_id=int(r["run_id"]), status=r["status"], complete=r["complete"], scope=r["scope"],
        freeze_recommended=r["freeze_recommended"], findings=len(findings), checks=tuple(checks),
        error=r["error"], window_start=r["window_start"], window_end=r["window_end"],
        started_at=r["started_at"], finished_at=r["finished_at"], duration_ms=r["duration_ms"],
    )


def _latest_diagnosis(runs: Sequence[Mapping[str, Any]]) -> tuple[Diagnosis | None, int | None, list[str]]:
    """The newest run's result that parses: (diagnosis, its run id, why newer ones did not)."""
    errors: list[str] = []
    for r in reversed(runs):
        result = _jsonish(r["result"])
        if result is None:
            continue
        try:
            return Diagnosis.model_validate(result), int(r["run_id"]), errors
        except ValidationError as exc:
            errors.append(f"run {r['run_id']}: the stored result does not parse ({exc.error_count()} errors)")
    return None, None, errors


def _prompts(prompts: Sequence[Mapping[str, Any]], events: Sequence[Mapping[str, Any]]) -> tuple[ApprovalPrompt, ...]:
    by_prompt: dict[int, list[ApprovalEvent]] = defaultdict(list)
    for e in events:
        by_prompt[int(e["prompt_id"])].append(ApprovalEvent(
            event_id=int(e["event_id"]), type=e["type"], user_id=e["user_id"], vote=e["vote"], via=e["via"],
            details=_jsonish(e["details"]) or {}, created_at=e["created_at"],
        ))
    return tuple(
        ApprovalPrompt(
            prompt_id=int(p["prompt_id"]), kind=p["kind"], channel=p["channel"], thread_ts=p["thread_ts"],
            message_ts=p["message_ts"], scope=_jsonish(p["scope"]) or {}, reason=p["reason"],
            quorum=int(p["quorum"]), status=p["status"], freeze_id=p["freeze_id"], created_at=p["created_at"],
            expires_at=p["expires_at"], decided_at=p["decided_at"], decided_by=tuple(p["decided_by"] or ()),
            votes=tuple(Vote(user_id=v["user_id"], vote=v["vote"], via=v["via"], created_at=_ts(v["created_at"]))
                        for v in _jsonish(p["votes"]) or []),
            events=tuple(by_prompt.get(int(p["prompt_id"]), [])),
        )
        for p in prompts
    )


def _freeze(f: Mapping[str, Any]) -> Freeze:
    return Freeze(
        freeze_id=int(f["freeze_id"]), status=f["status"], reason=f["reason"],
        approved_by=tuple(f["approved_by"] or ()), prompt_id=f["prompt_id"], frozen_at=f["frozen_at"],
        lifted_at=f["lifted_at"], lifted_by=tuple(f["lifted_by"] or ()), lift_prompt_id=f["lift_prompt_id"],
        scopes=tuple(FreezeScope(s["org_id"], s.get("project_id"), s.get("app_instance_id"))
                     for s in _jsonish(f["scopes"]) or []),
    )


def org_and_project(incident: Incident, diagnosis: Diagnosis | None) -> tuple[str | None, str | None]:
    """The incident's org and project; else the one pair every finding names."""
    if incident.org_id:
        return incident.org_id, incident.project_id
    pairs = {(f.org_id, f.project_id) for f in diagnosis.findings} if diagnosis else set()
    if len(pairs) == 1:
        return next(iter(pairs))
    return None, None


def build_report(
    inc: Mapping[str, Any],
    runs: Sequence[Mapping[str, Any]],
    timeline: Sequence[Mapping[str, Any]],
    evidence: Sequence[Mapping[str, Any]],
    prompts: Sequence[Mapping[str, Any]],
    events: Sequence[Mapping[str, Any]],
    freezes: Sequence[Mapping[str, Any]],
    tickets: Sequence[Mapping[str, Any]] = (),
    corrections: tuple[Sequence[Mapping[str, Any]], Sequence[Mapping[str, Any]]] = ((), ()),
) -> IncidentReport:
    """The report from the rows of the report queries (pure); ``corrections``: the rows of
    the sealed batches and of their corrections."""
    incident = Incident(**{k: inc[k] for k in Incident.__dataclass_fields__})
    diagnosis, latest_run_id, errors = _latest_diagnosis(runs)
    records = [
        EvidenceRecord(**_fields(row, EvidenceRecord.__dataclass_fields__, ("params", "rows")))
        for row in evidence
    ]
    latest_records = [e for e in records if e.run_id == latest_run_id] if latest_run_id is not None else []
    org_id, project_id = org_and_project(incident, diagnosis)
    return IncidentReport(
        incident=incident, runs=tuple(_run_summary(r) for r in runs), latest_run_id=latest_run_id,
        diagnosis=diagnosis, diagnosis_error=errors[-1] if errors else None,
        timeline=tuple(TimelineEvent(**_fields(row, TimelineEvent.__dataclass_fields__, ("details",)))
                       for row in timeline),
        evidence=group_evidence(records), usage_vs_ledger=usage_vs_ledger(latest_records, diagnosis),
        prompts=_prompts(prompts, events), freezes=tuple(_freeze(f) for f in freezes),
        notes=tuple(errors), org_id=org_id, project_id=project_id,
        tickets=tuple(FollowUpTicket.of(t) for t in tickets),
        corrections=report_corrections(incident.incident_id, *corrections, diagnosis, latest_run_id),
    )


def group_evidence(records: Iterable[EvidenceRecord]) -> tuple[RunEvidence, ...]:
    """Evidence per run (runs in order, incident-level records last), split by phase,
    with one comparison per query: before vs after row count and digests."""
    by_run: dict[int | None, list[EvidenceRecord]] = defaultdict(list)
    for e in records:
        by_run[e.run_id].append(e)
    out: list[RunEvidence] = []
    for run_id in sorted(by_run, key=lambda r: (r is None, r or 0)):
        recs = by_run[run_id]
        keyed: dict[tuple[str, str, str], dict[str, list[EvidenceRecord]]] = {}
        for e in recs:
            key = (e.step, e.request, canonical_json(e.params))
            keyed.setdefault(key, {"before": [], "after": []})[e.phase].append(e)
        comparisons = []
        # a stable order (steps as the runbook runs them), whatever order concurrent calls were recorded in
        for (step, request, _), phases in sorted(keyed.items(), key=lambda kv: (_step_rank(kv[0][0]), kv[0])):
            first = (phases["before"] or phases["after"])[0]
            b, a = phases["before"], phases["after"]
            comparisons.append(QueryComparison(
                step=step, source=first.source, kind=first.kind, request=request, params=dict(first.params),
                before_count=sum(e.row_count for e in b) if b else None,
                before_digests=tuple(e.rows_digest for e in b),
                after_count=sum(e.row_count for e in a) if a else None,
                after_digests=tuple(e.rows_digest for e in a),
            ))
        out.append(RunEvidence(
            run_id=run_id,
            before=tuple(e for e in recs if e.phase == "before"),
            after=tuple(e for e in recs if e.phase == "after"),
            comparisons=tuple(comparisons),
        ))
    return tuple(out)


def _step_rank(step: str) -> int:
    try:
        return STEP_ORDER.index(step)
    except ValueError:
        return len(STEP_ORDER)


__all__ = [
    "ApprovalEvent",
    "ApprovalPrompt",
    "FollowUpTicket",
    "Freeze",
    "FreezeScope",
    "IncidentReport",
    "InstanceCharge",
    "QueryComparison",
    "ReportCorrections",
    "RunEvidence",
    "RunSummary",
    "SealedBatch",
    "UsageVsLedger",
    "Vote",
    "build_report",
    "group_evidence",
    "load_report",
    "usage_vs_ledger",
]
