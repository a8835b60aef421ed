"""Follow-up tickets, wired in: queued after a recorded diagnosis, run by the worker.

When ``RECON_TRACKER`` is set, every recorded diagnosis that has follow-ups queues one
durable ``tracker_ticket`` job (``enqueue_after_diagnosis``: the Slack ``/recon`` job,
alert triage, a ``/recon verify`` that did not recover), and a verification that finds
the incident recovered queues one with ``"event": "recovered"``
(``enqueue_after_verify``). The job is queued after the thread is complete, so a slow
or broken tracker never holds up a diagnosis; its dedup key
(``tracker_ticket:<incident>:<run>:<event>``) makes a second enqueue of the same run
while the first is queued or running return that job.

``TicketServices.run_job`` is the job's consumer (``bot.server.consumers``): it gives
``bot.tracker.job.run_ticket_job`` a ``TicketDeps`` bound to the job — the thread it
was queued from (else the incident's), posts keyed in that thread's own namespace (a
rerun posts nothing twice), timeline events with source ``tracker``. A tracker still
unreachable on the job's last attempt is said once in the thread; earlier attempts are
retried by the worker after the delay the tracker asked for (``retry_after_s``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from slack_sdk.web.async_client import AsyncWebClient

from bot.diagnosis.model import Diagnosis
from bot.errors import BadInput, TrackerRetryable
from bot.render.slack import Message, esc
from bot.report.links import incident_link
from bot.slack.pace import ChannelPacer
from bot.slack.poster import SlackThread
from bot.store.jobs import Job, JobQueue
from bot.store.store import Run, Store
from bot.tracker.base import Tracker
from bot.tracker.job import JOB_KIND, RetryPolicy, run_ticket_job
from bot.tracker.model import MAX_LISTED, EvidenceDigest, IncidentFacts
from bot.tracker.settings import TrackerSettings
from bot.tracker.store import TicketStore

log = logging.getLogger(__name__)
KIND = JOB_KIND
Event = Literal["diagnosis", "recovered"]
DOWN_KEY = "ticket-down"


def dedup_key(incident_id: str, run_id: int | None, event: Event) -> str:
    return f"{KIND}:{incident_id}:{run_id if run_id is not None else '-'}:{event}"


async def enqueue_tickets(queue: JobQueue, incident_id: str, run_id: int | None, event: Event, *,
                          channel: str | None = None, thread_ts: str | None = None) -> Job:
    """Queue the ticket job (or find the active one for the same run and event)."""
    payload = {"incident_id": incident_id, "run_id": run_id, "event": event, "channel": channel,
               "thread_ts": thread_ts or None}
    job, created = await queue.enqueue(KIND, dedup_key(incident_id, run_id, event), payload)
    if created:
        await queue.set_incident(job.job_id, incident_id)
        log.info("incident %s: follow-up ticket job %s queued (%s, run %s)", incident_id, job.job_id, event, run_id)
    return job


async def enqueue_after_diagnosis(queue: JobQueue, settings: TrackerSettings, incident_id: str,
                                  run_id: int | None, d: Diagnosis, channel: str | None,
                                  thread_ts: str | None) -> Job | None:
    """After a recorded diagnosis: its follow-ups become tickets (or comments on them)."""
    if settings.tracker is None or not d.follow_ups:
        return None
    return await enqueue_tickets(queue, incident_id, run_id, "diagnosis", channel=channel, thread_ts=thread_ts)


async def enqueue_after_verify(queue: JobQueue, settings: TrackerSettings, incident_id: str, run_id: int | None,
                               recovered: bool, after: Diagnosis, channel: str | None,
                               thread_ts: str | None) -> Job | None:
    """After a verification: recovered, each ticket is told so; else the "after"
    diagnosis is one more diagnosis (what changed is commented)."""
    if settings.tracker is None:
        return None
    if recovered:
        return await enqueue_tickets(queue, incident_id, run_id, "recovered", channel=channel, thread_ts=thread_ts)
    return await enqueue_after_diagnosis(queue, settings, incident_id, run_id, after, channel, thread_ts)


# ---------------------------------------------------------------- the consumer


@dataclass(slots=True)
class TicketServices:
    """What every ticket job runs on; ``run_job`` is the ``tracker_ticket`` consumer."""

    settings: Any  # bot.settings.Settings (public URL and report secret for the report link)
    store: Store
    queue: JobQueue
    slack: AsyncWebClient
    tracker: Tracker
    pacer: ChannelPacer | None = None
    policy: RetryPolicy | None = None
    tickets: TicketStore = field(init=False)

    def __post_init__(self) -> None:
        self.tickets = TicketStore(self.store.pool)

    async def run_job(self, job: Job) -> dict[str, Any]:
        deps = JobTicketDeps(self, job)
        try:
            outcome = await run_ticket_job(job.payload, deps, self.policy)
        except BadInput as exc:  # a payload no attempt can run
            log.error("job %s: %s", job.job_id, exc)
            return {"error": str(exc)}
        except TrackerRetryable as exc:
            if job.attempts >= job.max_attempts:
                await deps.report_down(exc)
            raise
        return outcome.as_result()


@dataclass(slots=True)
class JobTicketDeps:
    """``bot.tracker.job.TicketDeps`` for one job."""

    services: TicketServices
    job: Job
    _thread: tuple[str, str] | None = None
    _looked: bool = False

    @property
    def tickets(self) -> TicketStore:
        return self.services.tickets

    @property
    def tracker(self) -> Tracker:
        return self.services.tracker

    def _run_id(self) -> int | None:
        v = self.job.payload.get("run_id")
        return v if isinstance(v, int) else None

    async def incident_facts(self, incident_id: str, run_id: int | None) -> IncidentFacts:
        store = self.services.store
        incident = await store.get_incident(incident_id)
        if incident is None:
            raise BadInput(f"no incident {incident_id}")
        run = _run_of(await store.list_runs(incident_id), run_id)
        d = Diagnosis.model_validate(run.result) if run is not None and run.result else None
        evidence = await store.evidence(incident_id, run.run_id) if run is not None else []
        correlation_ids = sorted({c for c in [d.subject.correlation_id if d else None, incident.correlation_id,
                                               *(c.correlation_id for c in (d.corrections if d else []))] if c})
        return IncidentFacts(
            incident_id=incident_id, report_url=await incident_link(self.services.settings, store, incident_id),
            follow_ups=list(d.follow_ups) if d else [], correlation_ids=correlation_ids,
            trace_ids=list(d.trace_ids) if d else [], opened_at=incident.created_at,
            evidence=[EvidenceDigest(f"{e.step}: {e.request}", e.rows_digest, e.row_count)
                      for e in evidence[:MAX_LISTED]])

    async def _where(self, incident_id: str) -> tuple[str, str] | None:
        """The thread the job was queued from, else the incident's; None: no thread (CLI)."""
        if not self._looked:
            self._looked = True
            p = self.job.payload
            channel, ts = p.get("channel"), p.get("thread_ts")
            if isinstance(channel, str) and channel and isinstance(ts, str) and ts:
                self._thread = (channel, ts)
            else:
                inc = await self.services.store.get_incident(incident_id)
                if inc is not None and inc.slack_channel and inc.slack_thread_ts:
                    self._thread = (inc.slack_channel, inc.slack_thread_ts)
        return self._thread

    async def post_to_thread(self, incident_id: str, key: str, text: str) -> None:
        where = await self._where(incident_id)
        if where is None:
            log.info("incident %s has no Slack thread; not posting %s", incident_id, key)
            return
        channel, ts = where
        s = self.services
        sink = SlackThread(s.slack, s.queue, f"tracker:{incident_id}:{ts}", channel, thread_ts=ts,
                           job_id=self.job.job_id, pacer=s.pacer)
        block = {"type": "section", "text": {"type": "mrkdwn", "text": text}}
        await sink.post_reply(Message(text=text, blocks=[block]), key=key)

    async def add_timeline(self, incident_id: str, type: str, description: str,
                           details: Mapping[str, Any]) -> None:
        await self.services.store.add_timeline_event(incident_id=incident_id, run_id=self._run_id(), type=type,
                                                     source="tracker", description=description,
                                                     details=dict(details))

    async def report_down(self, exc: TrackerRetryable) -> None:
        """The tracker did not answer on the job's last attempt: once in the thread, and
        on the timeline."""
        incident_id = self.job.payload.get("incident_id")
        if not isinstance(incident_id, str):
            return
        name = self.tracker.name
        await self.post_to_thread(incident_id, DOWN_KEY, (
            f":warning: No follow-up ticket was filed: {esc(name)} did not answer after "
            f"{self.job.attempts} attempts ({esc(exc.reason)}). The next diagnosis tries again."))
        await self.add_timeline(incident_id, "ticket_failed", f"{name} did not answer: {exc.reason}",
                                {"tracker": name, "attempts": self.job.attempts})


def _run_of(runs: list[Run], run_id: int | None) -> Run | None:
    """The run asked for, else the incident's latest finished one."""
    done = [r for r in runs if r.status == "done" and r.result]
    for r in done:
        if r.run_id == run_id:
            return r
    return done[-1] if done else None
