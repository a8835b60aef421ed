"""Recovery verification: re-run the checks over an incident's scope, record the
"after" evidence, and evaluate the runbook's four recovery criteria one by one. The
incident is marked recovered only when all four hold (and every source was read).

Criterion 1 (the mixed usage listing/export separates allocation from app_runtime) is
about what the customer sees: it holds only when a usage export covering the incident's
org and its window's months was read in this verification (a file given, or fetched
from BILLING_EXPORT_URL) and breaks neither rule 8 nor rule 1. Without one it is *not
verified*, and the incident is not recovered; the answer says how to give one."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from bot.diagnosis.model import CheckName, Diagnosis, ExportRead, Subject, Window
from bot.errors import BadInput
from bot.export.request import GivenExport, months_of, read_given_export
from bot.flows.diagnosis import SourceSet
from bot.flows.run import OpenedIncident, RecordedRun, run_recorded
from bot.metrics import Metrics
from bot.store.store import Incident, Store

log = logging.getLogger(__name__)

CRITERIA: tuple[tuple[str, str, tuple[CheckName, ...]], ...] = (
    ("separation", "The mixed usage listing/export separates allocation from app_runtime",
     ("wrong_source", "export_mismatch")),
    ("reconciled", "Each app instance's usage rows reconcile with its ledger", ("ledger_mismatch",)),
    ("control_plane", "Control-plane rows are explained by control_plane_component, operating_mode, "
                      "control_plane_scope and runtime_backend", ("control_plane_drift", "wrong_anchor")),
    ("charges", "No duplicate or missing customer-visible charge remains", ("duplicate_charge", "missing_usage")),
)


EXPORT_CRITERION = "separation"
CriterionState = Literal["holds", "fails", "not_verified"]


def export_how(incident_id: str) -> str:
    """How a person gives the export that criterion 1 needs."""
    return (f"give a usage export covering the incident's org and months: `recon verify {incident_id} --export "
            "usage.csv`, share the CSV in the incident's thread, or set BILLING_EXPORT_URL")


@dataclass(frozen=True, slots=True)
class Criterion:
    key: str
    text: str
    checks: tuple[CheckName, ...]
    before: int | None  # findings of those checks before (None: no earlier diagnosis)
    after: int
    holds: bool
    state: CriterionState = "fails"
    why: str = ""  # not verified: what was missing

    @classmethod
    def of(cls, key: str, text: str, checks: tuple[CheckName, ...], before: int | None, after: int, *,
           holds: bool, missing: str = "") -> Criterion:
        state: CriterionState = "not_verified" if missing else ("holds" if holds else "fails")
        return cls(key, text, checks, before, after, holds and not missing, state, missing)


@dataclass(frozen=True, slots=True)
class Verification:
    incident: Incident
    before: Diagnosis | None
    after: Diagnosis
    criteria: list[Criterion]
    recovered: bool
    run: RecordedRun

    def as_dict(self) -> dict[str, Any]:
        iid = self.incident.incident_id
        return {"incident_id": iid, "recovered": self.recovered, "complete": self.after.complete,
                "criteria": [{"key": c.key, "text": c.text, "holds": c.holds, "state": c.state, "why": c.why,
                              "how": export_how(iid) if c.state == "not_verified" else "",
                              "before": c.before, "after": c.after, "checks": list(c.checks)} for c in self.criteria],
                "export": self.after.export.model_dump(mode="json") if self.after.export else None,
                "before_checks": _counts(self.before) if self.before else None, "after_checks": _counts(self.after)}


def _counts(d: Diagnosis) -> dict[str, int]:
    out: dict[str, int] = {}
    for f in d.findings:
        out[f.check] = out.get(f.check, 0) + 1
    return out


def evaluate(before: Diagnosis | None, after: Diagnosis, scope: tuple[str | None, str | None] | None = None,
             months: list[str] | None = None) -> list[Criterion]:
    """Each criterion holds when no finding of its checks remains, every source was read,
    and the re-run still sees the incident's app instances (no evidence proves nothing).
    Criterion 1 also needs an export covering ``scope`` (org, project) and ``months``
    read in this verification: without one it is not verified."""
    b = _counts(before) if before else None
    a = _counts(after)
    seen = bool(after.identifiers.app_instance_ids) or not (before and before.identifiers.app_instance_ids)
    org, project = scope if scope is not None and scope[0] else _org_of(before, after)
    missing = export_missing(after.export, org, project, months or months_of(after.window.start, after.window.end))
    out = []
    for key, text, checks in CRITERIA:
        n_after = sum(a.get(c, 0) for c in checks)
        n_before = sum(b.get(c, 0) for c in checks) if b is not None else None
        out.append(Criterion.of(key, text, checks, n_before, n_after, holds=after.complete and seen and n_after == 0,
                                missing=missing if key == EXPORT_CRITERION else ""))
    return out


def _org_of(*diagnoses: Diagnosis | None) -> tuple[str | None, str | None]:
    """The one org (and project) the incident is about, when its diagnoses name just one."""
    for d in diagnoses:
        if d is None:
            continue
        if d.subject.org_id:
            return d.subject.org_id, d.subject.project_id
        if len(d.identifiers.org_ids) == 1:
            return d.identifiers.org_ids[0], (d.identifiers.project_ids[0] if len(d.identifiers.project_ids) == 1
                                              else None)
    return None, None


def export_missing(read: ExportRead | None, org: str | None, project: str | None, months: list[str]) -> str:
    """Why the export read (if any) does not cover the scope; empty when it does."""
    if read is None:
        return "no usage export was read in this verification"
    if org is not None and read.org_id != org:
        return f"the usage export read is of org {read.org_id}, not of the incident's org {org}"
    if read.project_id is not None and read.project_id != project:
        return f"the usage export read covers project {read.project_id} only"
    left_out = sorted(set(months) - set(read.months))
    if left_out:
        return f"the usage export read does not cover {', '.join(left_out)}"
    return ""


def subject_of(incident: Incident, before: Diagnosis | None) -> tuple[Subject, tuple[str, str | None] | None]:
    if before is not None:
        s = before.subject
        if s.correlation_id or s.app_instance_id:
            return Subject(correlation_id=s.correlation_id, app_instance_id=s.app_instance_id), None
        if s.org_id:
            return Subject(org_id=s.org_id, project_id=s.project_id), (s.org_id, s.project_id)
    if incident.correlation_id or incident.app_instance_id:
        return Subject(correlation_id=incident.correlation_id, app_instance_id=incident.app_instance_id), None
    if incident.org_id:
        return Subject(org_id=incident.org_id, project_id=incident.project_id), (incident.org_id, incident.project_id)
    raise BadInput(f"incident {incident.incident_id} has no subject to verify")


async def verify(*, store: Store, sources: SourceSet, incident_id: str, now: datetime, actor: str,
                 row_cap: int = 200, observers: list[Any] | None = None, metrics: Metrics | None = None,
                 job_id: int | None = None, given: GivenExport | None = None) -> Verification:
    """``given``: a usage export a person gave, read and reconciled before anything is
    recorded (a malformed one is ``BadInput``); else BILLING_EXPORT_URL's, if set."""
    incident = await store.get_incident(incident_id)
    if incident is None:
        raise BadInput(f"no incident {incident_id}")
    runs = [r for r in await store.list_runs(incident_id) if r.status == "done" and r.result]
    before = Diagnosis.model_validate(runs[-1].result) if runs else None
    subject, org_scope = subject_of(incident, before)
    span = (before.window.end - before.window.start) if before else timedelta(days=7)
    window = Window(now - span, now)
    scope = org_scope or (_org_of(before) if before else None)
    months = months_of(window.start, window.end)
    export = None
    if given is not None:
        org, project = scope or (None, None)
        export = await read_given_export(given.source, given.origin, sources.billing, org_id=org,
                                         project_id=project, max_bytes=given.max_bytes, cover=months)
    rec = await run_recorded(store=store, sources=sources, subject=subject, window=window, now=now,
                             origin=incident.origin, observers=observers, row_cap=row_cap, actor=actor,
                             org_scope=org_scope, phase="after", incident=OpenedIncident(incident, created=False),
                             metrics=metrics, job_id=job_id, export=export)
    after = rec.outcome.diagnosis
    criteria = evaluate(before, after, scope, months)
    recovered = all(c.holds for c in criteria)
    await _record(store, incident, rec, criteria, recovered, actor)
    if recovered and incident.status == "open":
        await store.set_incident_status(incident_id, "recovered")
        log.info("incident %s recovered", incident_id)
    return Verification(incident, before, after, criteria, recovered, rec)


async def _record(store: Store, incident: Incident, rec: RecordedRun, criteria: list[Criterion], recovered: bool,
                  actor: str) -> None:
    after, iid = rec.outcome.diagnosis, incident.incident_id
    unverified = [c for c in criteria if c.state == "not_verified"]
    description = ("recovered: all four recovery criteria hold" if recovered else
                   "not recovered: " + "; ".join(c.text + (" (not verified)" if c.state == "not_verified" else "")
                                                 for c in criteria if not c.holds))
    if unverified:
        description += f". Criterion 1 not verified: {unverified[0].why}; {export_how(iid)}"
    await store.add_timeline_event(
        incident_id=iid, run_id=rec.run_id, type="verification", source="recon", description=description,
        details={"criteria": [{"key": c.key, "holds": c.holds, "state": c.state, "before": c.before,
                               "after": c.after} for c in criteria], "complete": after.complete,
                 "export": after.export.model_dump(mode="json") if after.export else None},
        actor=actor, correlation_id=after.subject.correlation_id,
        trace_id=after.trace_ids[0] if after.trace_ids else None)
