"""One recorded diagnosis: the incident (given, found or opened), a run row, the evidence
and timeline via the Recorder, the result stored with the run. Shared by the CLI, the
demo, Slack, alert triage and verification."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.diagnosis.model import Diagnosis, Subject, Window
from bot.export.request import ExportRequest
from bot.flows.diagnosis import Outcome, SourceSet, diagnose
from bot.flows.record import Fanout, Recorder
from bot.flows.steps_report import Observer
from bot.logs import bind
from bot.metrics import Metrics, MetricsObserver
from bot.store.store import Incident, Origin, Phase, Store

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class OpenedIncident:
    """The incident a diagnosis is recorded into, and whether this request opened it."""

    incident: Incident
    created: bool


@dataclass(slots=True)
class RecordedRun:
    outcome: Outcome
    incident: Incident | None
    run_id: int | None
    recorder: Recorder | None
    duration_ms: float


def incident_title(subject: Subject) -> str:
    return f"Billing diagnosis: {subject.label()}"


async def open_incident(store: Store, subject: Subject, origin: Origin) -> OpenedIncident:
    """The open incident of the subject, or a new one."""
    incident, created = await store.get_or_create_incident(
        title=incident_title(subject), origin=origin, correlation_id=subject.correlation_id,
        app_instance_id=subject.app_instance_id, org_id=subject.org_id, project_id=subject.project_id,
    )
    return OpenedIncident(incident, created)


@dataclass(slots=True)
class _Recording:
    """The store's side of one run: its row, its recorder, its first and last events."""

    store: Store
    incident: Incident
    run_id: int
    recorder: Recorder
    subject: Subject
    actor: str

    @classmethod
    async def start(cls, store: Store, opened: OpenedIncident, subject: Subject, window: Window, *, origin: Origin,
                    actor: str, row_cap: int, job_id: int | None, phase: Phase) -> _Recording:
        incident = opened.incident
        run_id = await store.start_run(incident.incident_id, subject, window, job_id)
        recorder = Recorder(store, incident.incident_id, run_id, correlation_id=subject.correlation_id,
                            row_cap=row_cap, actor=actor, phase=phase)
        asked = "verification" if phase == "after" else "diagnosis"
        opened_how = "" if phase == "after" else (" (incident opened)" if opened.created
                                                  else " (incident already open)")
        await store.add_timeline_event(
            incident_id=incident.incident_id, run_id=run_id, type="diagnosis_started", source=origin,
            description=f"{asked} of {subject.label()} requested{opened_how}",
            details={"window_start": window.start.isoformat(), "window_end": window.end.isoformat()},
            actor=actor, correlation_id=subject.correlation_id,
        )
        return cls(store, incident, run_id, recorder, subject, actor)

    async def failed(self, exc: BaseException) -> None:
        try:
            await self.recorder.flush()
        except BaseException:  # even a second cancellation must not leave the run "running"
            log.exception("evidence of run %s not fully written", self.run_id)
        try:
            await self.store.finish_run(self.run_id, None, status="failed", error=f"{type(exc).__name__}: {exc}")
        except Exception:
            log.exception("could not mark run %s failed", self.run_id)

    async def finished(self, d: Diagnosis) -> None:
        await self.recorder.flush()
        await self.store.finish_run(self.run_id, d, status="done", complete=d.complete, scope=d.scope,
                                    freeze_recommended=d.freeze_recommended)
        await self.store.add_timeline_event(
            incident_id=self.incident.incident_id, run_id=self.run_id, type="diagnosis_finished", source="recon",
            description=(f"{len(d.findings)} finding(s), scope {d.scope}"
                         + (", freeze recommended" if d.freeze_recommended else "")
                         + ("" if d.complete else ", incomplete")),
            details={"checks": d.failed_checks(), "complete": d.complete, "sources": d.sources.model_dump()},
            actor=self.actor, correlation_id=self.subject.correlation_id,
            trace_id=d.trace_ids[0] if d.trace_ids else None,
        )


def _count(metrics: Metrics | None, outcome: str, started: float) -> None:
    if metrics is not None:
        metrics.diagnoses.labels(outcome).inc()
        metrics.diagnosis_seconds.labels(outcome).observe(time.perf_counter() - started)


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
    export: ExportRequest | None = None,
    job_id: int | None = None,
    phase: Phase = "before",
    incident: OpenedIncident | None = None,
    metrics: Metrics | None = None,
    on_diagnosis: Callable[[Diagnosis], Awaitable[None]] | None = None,
) -> RecordedRun:
    """Diagnose and record (with a store) into ``incident``: one the caller opened or
    found (a Slack request, a verification), else the subject's open incident or a new one.

    ``on_diagnosis`` gets the diagnosis as soon as it is assembled, before the run is
    recorded (the thread's verdict: ``ThreadObserver.verdict``); the run is recorded
    whether it succeeds or not, and its failure is raised after."""
    started = time.perf_counter()
    obs: list[Any] = list(observers or [])
    if metrics is not None:
        obs.append(MetricsObserver(metrics))
    rec: _Recording | None = None
    if store is not None:
        opened = incident or await open_incident(store, subject, origin)
        rec = await _Recording.start(store, opened, subject, window, origin=origin, actor=actor, row_cap=row_cap,
                                     job_id=job_id, phase=phase)
        obs.append(rec.recorder)
    observer: Observer = Fanout(*obs)
    bind(incident_id=rec.incident.incident_id if rec else None, correlation_id=subject.correlation_id)
    try:
        outcome = await diagnose(subject, window, now, sources, observer, org_scope=org_scope, export=export)
    except BaseException as exc:
        _count(metrics, "failed", started)
        if rec is not None:
            await rec.failed(exc)
        raise
    d = outcome.diagnosis
    _count(metrics, "complete" if d.complete else "incomplete", started)
    try:
        if on_diagnosis is not None:
            await on_diagnosis(d)
    finally:
        if rec is not None:
            await rec.finished(d)
    return RecordedRun(outcome, rec.incident if rec else None, rec.run_id if rec else None,
                       rec.recorder if rec else None, (time.perf_counter() - started) * 1000)
