"""Recovery verification: re-run the checks over an incident's scope, record the
"after" evidence, and evaluate the runbook's four recovery criteria one by one. The
incident is marked recovered only when all four hold (and every source was read)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from bot.diagnosis.model import CheckName, Diagnosis, Subject, Window
from bot.errors import BadInput
from bot.flows.diagnosis import SourceSet
from bot.flows.run import OpenedIncident, RecordedRun, run_recorded
from bot.metrics import Metrics
from bot.store.store import Incident, Store

log = logging.getLogger(__name__)

CRITERIA: tuple[tuple[str, str, tuple[CheckName, ...]], ...] = (
    ("separation", "The mixed usage listing separates allocation from app_runtime", ("wrong_source",)),
    ("reconciled", "Each app instance's usage rows reconcile with its ledger", ("ledger_mismatch",)),
    ("control_plane", "Control-plane rows are explained by control_plane_component, operating_mode, "
                      "control_plane_scope and runtime_backend", ("control_plane_drift", "wrong_anchor")),
    ("charges", "No duplicate or missing customer-visible charge remains", ("duplicate_charge", "missing_usage")),
)


@dataclass(frozen=True, slots=True)
class Criterion:
    key: str
    text: str
    checks: tuple[CheckName, ...]
    before: int | None  # findings of those checks before (None: no earlier diagnosis)
    after: int
    holds: bool


@dataclass(frozen=True, slots=True)
class Verification:
    incident: Incident
    before: Diagnosis | None
    after: Diagnosis
    criteria: list[Criterion]
    recovered: bool
    run: RecordedRun

    def as_dict(self) -> dict[str, Any]:
        return {"incident_id": self.incident.incident_id, "recovered": self.recovered, "complete": self.after.complete,
                "criteria": [{"key": c.key, "text": c.text, "holds": c.holds, "before": c.before, "after": c.after,
                              "checks": list(c.checks)} for c in self.criteria],
                "before_checks": _counts(self.before) if self.before else None, "after_checks": _counts(self.after)}


def _counts(d: Diagnosis) -> dict[str, int]:
    out: dict[str, int] = {}
    for f in d.findings:
        out[f.check] = out.get(f.check, 0) + 1
    return out


def evaluate(before: Diagnosis | None, after: Diagnosis) -> list[Criterion]:
    """Each criterion holds when no finding of its checks remains, every source was read,
    and the re-run still sees the incident's app instances (no evidence proves nothing)."""
    b = _counts(before) if before else None
    a = _counts(after)
    seen = bool(after.identifiers.app_instance_ids) or not (before and before.identifiers.app_instance_ids)
    out = []
    for key, text, checks in CRITERIA:
        n_after = sum(a.get(c, 0) for c in checks)
        n_before = sum(b.get(c, 0) for c in checks) if b is not None else None
        out.append(Criterion(key, text, checks, n_before, n_after, holds=after.complete and seen and n_after == 0))
    return out


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
                 row_cap: int = 200, observers: list[Any] | None = None,
                 metrics: Metrics | None = None, job_id: int | None = None) -> Verification:
    incident = await store.get_incident(incident_id)
    if incident is None:
        raise BadInput(f"no incident {incident_id}")
    runs = [r for r in await store.list_runs(incident_id) if r.status == "done" and r.result]
    before = Diagnosis.model_validate(runs[-1].result) if runs else None
    subject, org_scope = subject_of(incident, before)
    span = (before.window.end - before.window.start) if before else timedelta(days=7)
    rec = await run_recorded(store=store, sources=sources, subject=subject, window=Window(now - span, now), now=now,
                             origin=incident.origin, observers=observers, row_cap=row_cap, actor=actor,
                             org_scope=org_scope, phase="after", incident=OpenedIncident(incident, created=False),
                             metrics=metrics, job_id=job_id)
    after = rec.outcome.diagnosis
    criteria = evaluate(before, after)
    recovered = all(c.holds for c in criteria)
    await store.add_timeline_event(
        incident_id=incident_id, run_id=rec.run_id, type="verification", source="recon",
        description=("recovered: all four recovery criteria hold" if recovered else
                     "not recovered: " + "; ".join(c.text for c in criteria if not c.holds)),
        details={"criteria": [{"key": c.key, "holds": c.holds, "before": c.before, "after": c.after}
                              for c in criteria], "complete": after.complete},
        actor=actor, correlation_id=subject.correlation_id, trace_id=after.trace_ids[0] if after.trace_ids else None)
    if recovered and incident.status == "open":
        await store.set_incident_status(incident_id, "recovered")
        log.info("incident %s recovered", incident_id)
    return Verification(incident, before, after, criteria, recovered, rec)
