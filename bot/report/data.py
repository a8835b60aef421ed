"""Everything an incident report shows, read from the store in one consistent snapshot.

``load_report(pool, incident_id)`` returns an ``IncidentReport`` (or None for an unknown
incident): the incident; its diagnosis runs (the newest finished one's result parsed as a
``Diagnosis``); the timeline in order; the evidence grouped by run and phase, with the
rows kept and a before/after comparison per query; the findings and the customer impact
of the latest diagnosis; usage against ledger per app instance; approval prompts with
their votes and audit; and the incident's freezes. Queries: ``bot/report/sql/``.

**Usage against ledger** (``InstanceCharge``), computed from the evidence rows the latest
finished run recorded (usage rows and ledger entries, deduplicated by id):

- ``usage_rows``: usage rows of the instance that recon saw;
- ``charged_minor``: what the customer is charged for them: ``usage`` debits naming those
  rows, less the ``reversal`` credits that reverse such a debit (refunds and promo
  credits are deliberate concessions and left out, as the checks do);
- ``expected_minor``: ``charged_minor`` less the net customer impact the diagnosis found
  for the instance (overcharged − undercharged); equal to the charge when recon found no
  drift on it.

Evidence keeps at most ``RECON_EVIDENCE_ROW_CAP`` rows per record, and at scale the
billing database screens usage rows (``suspect_usage``): then the figures cover only the
rows recorded, and ``complete`` is false with the reason in ``notes``.
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
from bot.sqlfiles import Queries
from bot.store.db import Pool, canonical_json
from bot.store.store import EvidenceRecord, Incident, TimelineEvent

Q = Queries("bot.report", "sql")
_DB_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError)
SCREENED_QUERIES = frozenset({"suspect_usage"})
STEP_ORDER = ("logs", "billing_rows", "trace", "pivot", "attribution", "reconciliation")


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
class InstanceCharge:
    """Usage against ledger for one app instance and currency (see the module doc)."""

    app_instance_id: str | None
    org_id: str
    project_id: str
    currency: str
    usage_rows: int
    charged_minor: int
    expected_minor: int

    @property
    def difference_minor(self) -> int:
        """Positive: the customer pays more than expected."""
        return self.charged_minor - self.expected_minor


@dataclass(frozen=True, slots=True)
class UsageVsLedger:
    instances: tuple[InstanceCharge, ...]
    complete: bool
    notes: tuple[str, ...]


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
    except _DB_ERRORS as exc:
        raise StoreError(f"cannot read the report of {incident_id}: {exc}") from exc
    return build_report(dict(inc), *([dict(r) for r in rows] for rows in (runs, timeline, evidence, prompts, events,
                                                                          freezes)))


def build_report(
    inc: Mapping[str, Any],
    runs: Sequence[Mapping[str, Any]],
    timeline: Sequence[Mapping[str, Any]],
    evidence: Sequence[Mapping[str, Any]],
    prompts: Sequence[Mapping[str, Any]],
    events: Sequence[Mapping[str, Any]],
    freezes: Sequence[Mapping[str, Any]],
) -> IncidentReport:
    """The report from the rows of the report queries (pure)."""
    incident = Incident(**{k: inc[k] for k in Incident.__dataclass_fields__})
    notes: list[str] = []

    summaries: list[RunSummary] = []
    diagnosis: Diagnosis | None = None
    diagnosis_error: str | None = None
    latest_run_id: int | None = None
    for r in runs:
        result = _jsonish(r["result"])
        findings: list[Any] = result.get("findings", []) if isinstance(result, dict) else []
        checks: list[str] = []
        for f in findings:
            c = f.get("check") if isinstance(f, dict) else None
            if isinstance(c, str) and c not in checks:
                checks.append(c)
        summaries.append(RunSummary(
            run_id=int(r["run_id"]), status=r["status"], complete=r["complete"], scope=r["scope"],
            freeze_recommended=r["freeze_recommended"], findings=len(findings), checks=tuple(checks),
            error=r["error"], window_start=r["window_start"], window_end=r["window_end"],
            started_at=r["started_at"], finished_at=r["finished_at"], duration_ms=r["duration_ms"],
        ))
    for r in reversed(runs):  # the newest run with a result
        result = _jsonish(r["result"])
        if result is None:
            continue
        try:
            diagnosis = Diagnosis.model_validate(result)
            latest_run_id = int(r["run_id"])
        except ValidationError as exc:
            diagnosis_error = f"run {r['run_id']}: the stored result does not parse ({exc.error_count()} errors)"
            notes.append(diagnosis_error)
            continue
        break

    events_tl = tuple(
        TimelineEvent(**_fields(row, TimelineEvent.__dataclass_fields__, ("details",)))
        for row in timeline
    )
    records = [
        EvidenceRecord(**_fields(row, EvidenceRecord.__dataclass_fields__, ("params", "rows")))
        for row in evidence
    ]
    grouped = group_evidence(records)
    latest_records = [e for e in records if e.run_id == latest_run_id] if latest_run_id is not None else []
    uvl = usage_vs_ledger(latest_records, diagnosis)

    by_prompt: dict[int, list[ApprovalEvent]] = defaultdict(list)
    for e in events:
        by_prompt[int(e["prompt_id"])].append(ApprovalEvent(
            event_id=int(e["event_id"]), type=e["type"], user_id=e["user_id"], vote=e["vote"], via=e["via"],
            details=_jsonish(e["details"]) or {}, created_at=e["created_at"],
        ))
    prompt_list = tuple(
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
    freeze_list = tuple(
        Freeze(
            freeze_id=int(f["freeze_id"]), status=f["status"], reason=f["reason"],
            approved_by=tuple(f["approved_by"] or ()), prompt_id=f["prompt_id"], frozen_at=f["frozen_at"],
            lifted_at=f["lifted_at"], lifted_by=tuple(f["lifted_by"] or ()), lift_prompt_id=f["lift_prompt_id"],
            scopes=tuple(FreezeScope(s["org_id"], s.get("project_id"), s.get("app_instance_id"))
                         for s in _jsonish(f["scopes"]) or []),
        )
        for f in freezes
    )
    return IncidentReport(
        incident=incident, runs=tuple(summaries), latest_run_id=latest_run_id, diagnosis=diagnosis,
        diagnosis_error=diagnosis_error, timeline=events_tl, evidence=grouped, usage_vs_ledger=uvl,
        prompts=prompt_list, freezes=freeze_list, notes=tuple(notes),
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


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def usage_vs_ledger(records: Sequence[EvidenceRecord], diagnosis: Diagnosis | None) -> UsageVsLedger:
    """Per app instance: usage rows seen, the customer-visible charge, the expected charge."""
    usage: dict[str, Mapping[str, Any]] = {}
    ledger: dict[str, Mapping[str, Any]] = {}
    notes: list[str] = []
    complete = True
    for e in records:
        if e.kind != "sql":
            continue
        rows = [r for r in e.rows if isinstance(r, dict)]
        kinds_here = set()
        for r in rows:
            if "usage_record_id" in r and "quantity" in r and "period_start" in r:
                usage.setdefault(str(r["usage_record_id"]), r)
                kinds_here.add("usage")
            elif "ledger_entry_id" in r and "amount_minor" in r:
                ledger.setdefault(str(r["ledger_entry_id"]), r)
                kinds_here.add("ledger")
        if e.truncated and kinds_here:
            complete = False
            notes.append(f"{e.request}: {len(e.rows)} of {e.row_count} rows recorded (row cap)")
        if e.request in SCREENED_QUERIES:
            complete = False
            notes.append(f"{e.request}: the billing database screened the usage rows; only the doubtful ones "
                         "were read")
        if e.error and e.source == "billing":
            complete = False
            notes.append(f"{e.request}: {e.error}")

    # the charge: usage debits on known rows, less the reversals of those debits
    debit_of: dict[str, str] = {}  # ledger entry id -> usage row id
    charged: dict[tuple[str, str], int] = defaultdict(int)  # (usage row id, currency) -> minor
    unmatched = 0
    for lid, entry in ledger.items():
        if entry.get("kind") == "usage" and entry.get("direction") == "debit":
            uid = entry.get("usage_record_id")
            if uid is not None and str(uid) in usage:
                debit_of[lid] = str(uid)
                charged[(str(uid), str(entry.get("currency") or ""))] += _int(entry.get("amount_minor"))
            else:
                unmatched += 1
    for entry in ledger.values():
        if entry.get("kind") == "reversal" and entry.get("direction") == "credit":
            target = entry.get("reverses_entry_id")
            if target is not None and str(target) in debit_of:
                uid = debit_of[str(target)]
                charged[(uid, str(entry.get("currency") or ""))] -= _int(entry.get("amount_minor"))
    if unmatched:
        notes.append(f"{unmatched} usage debit(s) name no usage row recon saw; they are not in the chart")

    Key = tuple[str | None, str, str, str]  # instance, org, project, currency
    rows_per: dict[tuple[str | None, str, str], int] = defaultdict(int)
    money: dict[Key, int] = defaultdict(int)
    for u in usage.values():
        inst = u.get("app_instance_id")
        ident = (str(inst) if inst is not None else None, str(u.get("org_id")), str(u.get("project_id")))
        rows_per[ident] += 1
    for (uid, currency), amount in charged.items():
        u = usage[uid]
        inst = u.get("app_instance_id")
        money[(str(inst) if inst is not None else None, str(u.get("org_id")), str(u.get("project_id")),
               currency)] += amount
    net_impact: dict[Key, int] = defaultdict(int)
    for row in diagnosis.impact if diagnosis else []:
        net_impact[(row.app_instance_id, row.org_id, row.project_id, row.currency)] += (
            row.overcharged_minor - row.undercharged_minor)
    keys: set[Key] = set(money) | set(net_impact)
    for ident in rows_per:
        if not any(k[:3] == ident for k in keys):
            keys.add((*ident, ""))  # usage but no charge at all: currency unknown
    instances = [
        InstanceCharge(
            app_instance_id=k[0], org_id=k[1], project_id=k[2], currency=k[3],
            usage_rows=rows_per.get((k[0], k[1], k[2]), 0), charged_minor=money.get(k, 0),
            expected_minor=money.get(k, 0) - net_impact.get(k, 0),
        )
        for k in keys
    ]
    instances.sort(key=lambda c: (c.currency, c.org_id, c.project_id, c.app_instance_id or ""))
    return UsageVsLedger(tuple(instances), complete, tuple(dict.fromkeys(notes)))


__all__ = [
    "ApprovalEvent",
    "ApprovalPrompt",
    "Freeze",
    "FreezeScope",
    "IncidentReport",
    "InstanceCharge",
    "QueryComparison",
    "RunEvidence",
    "RunSummary",
    "UsageVsLedger",
    "Vote",
    "build_report",
    "group_evidence",
    "load_report",
    "usage_vs_ledger",
]
