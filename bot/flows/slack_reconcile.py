"""The ``reconcile`` job: a diagnosis asked from a surface other than ``/recon``.

- The reconcile modal (the shortcuts ``recon_reconcile`` and ``recon_open``): its subject
  and window, in the thread of the message the shortcut was used on (or a new thread in
  the channel picked), with the message's CSV export when the form kept it.
- A usage export (CSV) shared in an incident's thread: the incident's diagnosis again,
  over its last window, with that export (``ExportReady``), in the same thread.

The export is read before anything is recorded (``bot.flows.slack_export``): a bad file
is answered in the thread naming its line and column, and nothing is diagnosed. Safe to
run again: posts are keyed (``bot.slack.poster``), an earlier attempt's run is marked
failed.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from bot.diagnosis.model import Diagnosis, Subject, Window
from bot.errors import SourceFailure
from bot.export.csvfile import ExportInvalid
from bot.export.request import ExportReady
from bot.flows.followup_tickets import enqueue_after_diagnosis
from bot.flows.org_scope import org_scope_of, org_unknown, unknown_org_text
from bot.flows.run import OpenedIncident, open_incident, run_recorded
from bot.flows.slack_diagnosis import SlackDiagnosisDeps
from bot.flows.slack_export import export_problem_text, read_slack_export
from bot.flows.thread import ThreadObserver
from bot.flows.verify import subject_of
from bot.render.approvals import short
from bot.render.slack import Message
from bot.slack.poster import SlackThread
from bot.store.jobs import Job, job_namespace
from bot.store.store import Incident

log = logging.getLogger(__name__)
KIND = "reconcile"
DEFAULT_SPAN = timedelta(days=7)


def reconcile_payload(subject: Subject, *, channel: str, thread_ts: str | None, user: str | None, start: datetime,
                      end: datetime, export: tuple[str, str] | None, origin: str) -> dict[str, Any]:
    """A job from the modal: ``export`` is the (file id, name) to reconcile, if any."""
    return {"subject": subject.model_dump(mode="json"), "channel": channel, "thread_ts": thread_ts, "user": user,
            "window_start": start.isoformat(), "window_end": end.isoformat(), "origin": origin,
            "export": {"file_id": export[0], "name": export[1]} if export else None, "incident_id": None}


def export_payload(incident_id: str, *, channel: str, thread_ts: str, user: str | None, file_id: str, name: str,
                   now: datetime) -> dict[str, Any]:
    """A job from a CSV shared in an incident's thread."""
    return {"subject": None, "channel": channel, "thread_ts": thread_ts, "user": user, "window_start": None,
            "window_end": now.isoformat(), "origin": "file_share",
            "export": {"file_id": file_id, "name": name}, "incident_id": incident_id}


class ReplyThread(SlackThread):
    """A ThreadSink inside an existing thread: the "parent" is recon's first reply there,
    and it is the one updated with the verdict."""

    anchor: str | None = None

    async def post_parent(self, msg: Message) -> str:
        self.anchor = await self.post("parent", msg, thread_ts=self.thread_ts)
        return self.anchor

    async def update_parent(self, msg: Message) -> None:
        assert self.anchor is not None, "post_parent comes first"
        await self.update(self.anchor, msg)


@dataclass(slots=True)
class _Plan:
    subject: Subject
    window: Window
    org_scope: tuple[str, str | None] | None
    incident: OpenedIncident | None


async def run_reconcile_job(job: Job, deps: SlackDiagnosisDeps) -> Mapping[str, Any]:
    p = job.payload
    channel, root = str(p["channel"]), p.get("thread_ts")
    ns = job_namespace(job.job_id)
    sink = (ReplyThread(deps.slack, deps.queue, ns, channel, thread_ts=root, job_id=job.job_id) if root
            else SlackThread(deps.slack, deps.queue, ns, channel, job_id=job.job_id))
    plan = await _plan(p, deps)
    if plan is None:
        await sink.post("no_incident", short(":warning: That incident is gone; nothing was reconciled."),
                        thread_ts=root)
        return {"skipped": "no incident"}
    export = None
    if p.get("export"):
        try:
            export = await _read_export(p["export"], plan, deps)
        except (ExportInvalid, SourceFailure) as exc:
            await sink.post("export_problem", short(export_problem_text(p["export"]["name"], exc)), thread_ts=root)
            return {"export_refused": str(exc)}
    if plan.org_scope is not None and plan.incident is None and \
            await org_unknown(deps.sources.billing, plan.org_scope[0], plan.window.end):
        await sink.post("unknown_org", short(unknown_org_text(*plan.org_scope)), thread_ts=root)
        return {"unknown_org": plan.org_scope[0]}
    return await _diagnose(job, deps, plan, sink, export)


async def _plan(p: Mapping[str, Any], deps: SlackDiagnosisDeps) -> _Plan | None:
    end = datetime.fromisoformat(p["window_end"])
    if p.get("incident_id"):
        incident = await deps.store.get_incident(p["incident_id"])
        if incident is None:
            return None
        before = await _last_result(deps, incident)
        subject, org_scope = subject_of(incident, before)
        span = (before.window.end - before.window.start) if before else DEFAULT_SPAN
        return _Plan(subject, Window(end - span, end), org_scope, OpenedIncident(incident, created=False))
    subject = Subject.model_validate(p["subject"])
    return _Plan(subject, Window(datetime.fromisoformat(p["window_start"]), end), org_scope_of(subject), None)


async def _last_result(deps: SlackDiagnosisDeps, incident: Incident) -> Diagnosis | None:
    runs = [r for r in await deps.store.list_runs(incident.incident_id) if r.status == "done" and r.result]
    return Diagnosis.model_validate(runs[-1].result) if runs else None


async def _read_export(spec: Mapping[str, Any], plan: _Plan, deps: SlackDiagnosisDeps) -> ExportReady:
    org = plan.org_scope[0] if plan.org_scope else None
    project = plan.org_scope[1] if plan.org_scope else None
    return await read_slack_export(deps.slack, deps.settings, deps.sources.billing, str(spec["file_id"]),
                                   expected_org=org, project_id=project)


async def _diagnose(job: Job, deps: SlackDiagnosisDeps, plan: _Plan, sink: SlackThread,
                    export: ExportReady | None) -> Mapping[str, Any]:
    p = job.payload
    abandoned = await deps.store.abandon_runs(job.job_id, "an earlier attempt of this job stopped before finishing")
    if abandoned:
        log.info("job %s: resuming; earlier run(s) %s marked failed", job.job_id, abandoned)
    opened = plan.incident or await open_incident(deps.store, plan.subject, "slack")
    incident = opened.incident
    await deps.queue.set_incident(job.job_id, incident.incident_id)
    thread = ThreadObserver(sink, plan.subject, incident_id=incident.incident_id,
                            incident_url=await deps.incident_url(incident.incident_id), requested_by=p.get("user"))
    await thread.start()
    root = str(sink.thread_ts)
    await deps.store.set_incident_thread(incident.incident_id, sink.channel, root)
    try:
        rec = await run_recorded(store=deps.store, sources=deps.sources, subject=plan.subject, window=plan.window,
                                 now=plan.window.end, origin="slack", observers=[thread],
                                 row_cap=deps.settings.evidence_row_cap, actor=p.get("user") or "recon",
                                 job_id=job.job_id, metrics=deps.metrics, incident=opened, org_scope=plan.org_scope,
                                 export=export, on_diagnosis=thread.verdict)
    except Exception:
        await thread.fail()
        raise
    d = rec.outcome.diagnosis
    await thread.finish(d)
    if deps.approvals is not None:
        await deps.approvals.after_diagnosis(incident.incident_id, d, sink.channel, root)
    await enqueue_after_diagnosis(deps.queue, deps.settings, incident.incident_id, rec.run_id, d, sink.channel, root)
    return {"incident_id": incident.incident_id, "run_id": rec.run_id, "scope": d.scope, "complete": d.complete,
            "thread_ts": root, "export": d.export.model_dump(mode="json") if d.export else None,
            "posted": sink.posted, "skipped": sink.skipped}
