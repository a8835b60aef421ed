"""One recorded diagnosis: the incident (found or opened), a run row, the evidence and
timeline via the Recorder, the result stored with the run. Shared by the CLI, the
demo and (later) Slack and alert triage."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.diagnosis.model import Subject, Window
from bot.flows.diagnose import Observer, Outcome, SourceSet, diagnose
from bot.flows.record import Fanout, Recorder
from bot.logs import bind
from bot.metrics import Metrics, MetricsObserver
from bot.store.store import Incident, Origin, Phase, Store

log = logging.getLogger(__name__)


@dataclass(slots=True)
class RecordedRun:
    outcome: Outcome
    incident: Incident | None
    run_id: int | None
    recorder: Recorder | None
    duration_ms: float


def incident_title(subject: Subject) -> str:
    return f"Billing diagnosis: {subject.label()}"


async def run_recorded(
    *,
    store: Store | None,
    sources: SourceSet,
    subject: Subject,
    window: Window,
    now: datetime,
    origin: Origin,
    observers: list[Any] | None = None,
    row_cap: int = 200,
    actor: str = "recon",
    org_scope: tuple[str, str | None] | None = None,
    job_id: int | None = None,
    phase: Phase = "before",
    incident_id: str | None = None,
    metrics: Metrics | None = None,
) -> RecordedRun:
    """Diagnose and record. ``incident_id``: record into that incident (a verification);
    otherwise the open incident of the subject, or a new one."""
    started = time.perf_counter()
    incident = None
    run_id = None
    recorder = None
    obs: list[Any] = list(observers or [])
    if metrics is not None:
        obs.append(MetricsObserver(metrics))
    if store is not None:
        if incident_id is not None:
            incident, created = await store.get_incident(incident_id), False
            if incident is None:
                raise ValueError(f"no incident {incident_id}")
        else:
            incident, created = await store.get_or_create_incident(
                title=incident_title(subject), origin=origin, correlation_id=subject.correlation_id,
                app_instance_id=subject.app_instance_id, org_id=subject.org_id, project_id=subject.project_id,
            )
        run_id = await store.start_run(incident.incident_id, subject, window)
        if job_id is not None:
            await store.set_run_job(run_id, job_id)
        recorder = Recorder(store, incident.incident_id, run_id, correlation_id=subject.correlation_id,
                            row_cap=row_cap, actor=actor, phase=phase)
        await store.add_timeline_event(
            incident_id=incident.incident_id, run_id=run_id, type="diagnosis_started", source=origin,
            description=(f"verification of {subject.label()} requested" if phase == "after" else
                         f"diagnosis of {subject.label()} requested"
                         + (" (incident opened)" if created else " (incident already open)")),
            details={"window_start": window.start.isoformat(), "window_end": window.end.isoformat()},
            actor=actor, correlation_id=subject.correlation_id,
        )
        obs.append(recorder)
    observer: Observer = Fanout(*obs)
    bind(incident_id=incident.incident_id if incident else None, correlation_id=subject.correlation_id)
    try:
        outcome = await diagnose(subject, window, now, sources, observer, org_scope=org_scope)
    except BaseException as exc:
        if metrics is not None:
            metrics.diagnoses.labels("failed").inc()
            metrics.diagnosis_seconds.labels("failed").observe(time.perf_counter() - started)
        if recorder is not None:
            try:
                await recorder.flush()
            except BaseException:  # even a second cancellation must not leave the run "running"
                log.exception("evidence of run %s not fully written", run_id)
        if store is not None and run_id is not None:
            try:
                await store.finish_run(run_id, None, status="failed", error=f"{type(exc).__name__}: {exc}")
            except Exception:
                log.exception("could not mark run %s failed", run_id)
        raise
    d = outcome.diagnosis
    if metrics is not None:
        label = "complete" if d.complete else "incomplete"
        metrics.diagnoses.labels(label).inc()
        metrics.diagnosis_seconds.labels(label).observe(time.perf_counter() - started)
    if recorder is not None:
        await recorder.flush()
    if store is not None and incident is not None and run_id is not None:
        await store.finish_run(run_id, d, status="done", complete=d.complete, scope=d.scope,
                               freeze_recommended=d.freeze_recommended)
        await store.add_timeline_event(
            incident_id=incident.incident_id, run_id=run_id, type="diagnosis_finished", source="recon",
            description=(f"{len(d.findings)} finding(s), scope {d.scope}"
                         + (", freeze recommended" if d.freeze_recommended else "")
                         + ("" if d.complete else ", incomplete")),
            details={"checks": d.failed_checks(), "complete": d.complete, "sources": d.sources.model_dump()},
            actor=actor, correlation_id=subject.correlation_id,
            trace_id=d.trace_ids[0] if d.trace_ids else None,
        )
    return RecordedRun(outcome, incident, run_id, recorder, (time.perf_counter() - started) * 1000)
