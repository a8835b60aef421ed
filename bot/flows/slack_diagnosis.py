"""The ``diagnose`` job: a diagnosis narrated into a Slack thread, recorded in the store.

Safe to run again after a crash: the window is fixed when the job is accepted, posts
already made are skipped (``bot.slack.poster``), the earlier attempt's unfinished run is
marked failed, and the parent message is updated with the verdict (as soon as the
diagnosis is assembled, before the replies still on their way are posted and the run is
recorded; a retry shows it again)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Coroutine, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from slack_sdk.web.async_client import AsyncWebClient

from bot.diagnosis.model import Subject, Window
from bot.flows.approvals import ApprovalFlow
from bot.flows.diagnosis import SourceSet
from bot.flows.followup_tickets import enqueue_after_diagnosis
from bot.flows.org_scope import org_scope_of, org_unknown, unknown_org_text
from bot.flows.run import open_incident, run_recorded
from bot.flows.thread import ThreadObserver
from bot.logs import bind
from bot.metrics import Metrics
from bot.render.approvals import short
from bot.report.links import incident_link
from bot.settings import Settings
from bot.slack.poster import SlackThread
from bot.store.jobs import Job, JobQueue, job_namespace
from bot.store.store import Store

log = logging.getLogger(__name__)
T = TypeVar("T")
KIND = "diagnose"


@dataclass(slots=True)
class SlackDiagnosisDeps:
    settings: Settings
    store: Store
    queue: JobQueue
    sources: SourceSet
    slack: AsyncWebClient
    approvals: ApprovalFlow | None = None
    metrics: Metrics | None = None

    async def incident_url(self, incident_id: str) -> str | None:
        return await incident_link(self.settings, self.store, incident_id)


def diagnosis_payload(subject: Subject, *, channel: str, user: str | None, since: timedelta, now: datetime,
                      origin: str = "slack") -> dict[str, Any]:
    return {
        "subject": subject.model_dump(mode="json"),
        "channel": channel,
        "user": user,
        "window_end": now.isoformat(),
        "since_s": since.total_seconds(),
        "origin": origin,
    }


async def _set_thread(deps: SlackDiagnosisDeps, incident_id: str, channel: str, parent: Awaitable[str]) -> str:
    ts = await parent
    await deps.store.set_incident_thread(incident_id, channel, ts)
    return ts


async def beside(parent: asyncio.Future[str], work: Coroutine[Any, Any, T]) -> T:
    """``work``'s result, run while the parent message is posted. If the parent cannot be
    posted, the work is cancelled at once and the parent's error raised: a job that cannot
    show its thread does not diagnose (its retry does, once Slack answers)."""
    task = asyncio.ensure_future(work)
    both: set[asyncio.Future[Any]] = {parent, task}
    try:
        await asyncio.wait(both, return_when=asyncio.FIRST_EXCEPTION)
        if not task.done():  # the parent failed first
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            parent.result()
        return task.result()
    finally:
        task.cancel()  # a no-op once it is done; the job's own cancellation reaches the work


async def run_diagnosis_job(job: Job, deps: SlackDiagnosisDeps) -> Mapping[str, Any]:
    p = job.payload
    subject = Subject.model_validate(p["subject"])
    end = datetime.fromisoformat(p["window_end"])
    window = Window(end - timedelta(seconds=float(p["since_s"])), end)
    org_scope = org_scope_of(subject)
    if org_scope is not None and await org_unknown(deps.sources.billing, org_scope[0], end):
        sink = SlackThread(deps.slack, deps.queue, job_namespace(job.job_id), p["channel"], job_id=job.job_id)
        await sink.post("unknown_org", short(unknown_org_text(*org_scope)))
        return {"unknown_org": org_scope[0]}
    abandoned = await deps.store.abandon_runs(job.job_id, "an earlier attempt of this job stopped before finishing")
    if abandoned:
        log.info("job %s: resuming; earlier run(s) %s marked failed", job.job_id, abandoned)
    opened = await open_incident(deps.store, subject, "slack")
    incident = opened.incident
    # the job's own log lines name what it is about too, not only the diagnosis's (which runs
    # in a task of its own, beside the parent's post)
    bind(incident_id=incident.incident_id, correlation_id=subject.correlation_id)
    await deps.queue.set_incident(job.job_id, incident.incident_id)
    sink = SlackThread(deps.slack, deps.queue, job_namespace(job.job_id), p["channel"], job_id=job.job_id)
    thread = ThreadObserver(sink, subject, incident_id=incident.incident_id,
                            incident_url=await deps.incident_url(incident.incident_id), requested_by=p.get("user"))
    # the diagnosis starts while the parent is posted (a Slack round trip), and the incident's
    # thread is written once it is; the replies and the verdict wait for the parent
    parent = thread.begin()
    thread_set = asyncio.ensure_future(_set_thread(deps, incident.incident_id, p["channel"], parent))
    try:
        rec = await beside(parent, run_recorded(
            store=deps.store, sources=deps.sources, subject=subject, window=window, now=end, origin="slack",
            observers=[thread], row_cap=deps.settings.evidence_row_cap, actor=p.get("user") or "recon",
            job_id=job.job_id, metrics=deps.metrics, incident=opened, on_diagnosis=thread.verdict,
            org_scope=org_scope))
    except Exception:
        await asyncio.gather(thread_set, return_exceptions=True)
        await thread.fail()
        raise
    except BaseException:
        thread_set.cancel()
        parent.cancel()
        raise
    parent_ts = await thread_set
    d = rec.outcome.diagnosis
    await thread.finish(d)
    if deps.approvals is not None:
        await deps.approvals.after_diagnosis(incident.incident_id, d, p["channel"], parent_ts)
    await enqueue_after_diagnosis(deps.queue, deps.settings, incident.incident_id, rec.run_id, d, p["channel"],
                                  parent_ts)
    return {"incident_id": incident.incident_id, "run_id": rec.run_id, "scope": d.scope,
            "complete": d.complete, "thread_ts": parent_ts, "posted": sink.posted, "skipped": sink.skipped}
