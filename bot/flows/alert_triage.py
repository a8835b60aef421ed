"""Alert triage: each alert group's notifications shown in its own thread, in order, once.

``alert`` jobs process one group; ``alert_storm`` jobs post one summary for a storm and
triage its groups in order of severity, each as a reply in the summary's thread (their
later notifications update that reply). Both work under the group's advisory lock and
mark each notification handled once its Slack effects are done; every post has a stable
key in the group's namespace, so a retried or overlapping job never posts twice.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient

from bot.alerts.model import severity_rank
from bot.diagnosis.model import Subject, Window
from bot.flows.approvals import ApprovalFlow
from bot.flows.diagnosis import SourceSet
from bot.flows.followup_tickets import enqueue_after_diagnosis
from bot.flows.run import OpenedIncident, run_recorded
from bot.flows.thread import ThreadObserver
from bot.metrics import Metrics
from bot.render.alerts import alert_message, event_reply, storm_summary, verdict_of, verdict_reply
from bot.report.links import incident_link
from bot.settings import Settings
from bot.slack.pace import ChannelPacer
from bot.slack.poster import SlackThread
from bot.store.alerts import AlertGroup, AlertStore, Notification, Storm
from bot.store.jobs import Job, JobQueue
from bot.store.store import Store

log = logging.getLogger(__name__)
DEFAULT_WINDOW = timedelta(days=7)
PASS_SIZE = 500  # unhandled notifications of a group read at a time


@dataclass(slots=True)
class AlertDeps:
    settings: Settings
    store: Store
    alerts: AlertStore
    queue: JobQueue
    sources: SourceSet
    slack: AsyncWebClient
    pacer: ChannelPacer
    approvals: ApprovalFlow | None = None
    metrics: Metrics | None = None

    async def incident_url(self, incident_id: str | None) -> str | None:
        return await incident_link(self.settings, self.store, incident_id)


async def run_alert_job(job: Job, deps: AlertDeps) -> Mapping[str, Any]:
    await deps.alerts.release_key(job.job_id)
    await deps.store.abandon_runs(job.job_id, "an earlier attempt of this job stopped before finishing")
    shown = await process_group(int(job.payload["group_id"]), deps, job.job_id, storm=None)
    return {"group_id": job.payload["group_id"], "shown": shown}


async def run_storm_job(job: Job, deps: AlertDeps) -> Mapping[str, Any]:
    await deps.alerts.release_key(job.job_id)
    storm_id = int(job.payload["storm_id"])
    await deps.store.abandon_runs(job.job_id, "an earlier attempt of this job stopped before finishing")
    triaged = 0
    while True:
        async with deps.alerts.storm_lock(storm_id) as mine:
            if not mine:
                # the storm's job is running; it triages every group that joins (checked below)
                return {"storm_id": storm_id, "triaged": triaged, "handed_to": "the running storm job"}
            triaged += int((await _run_storm(job, deps, storm_id))["triaged"])
        # a group may have joined between our last look and the lock's release
        if not any(g.anchor_ts is None for g in await deps.alerts.storm_members(storm_id)):
            return {"storm_id": storm_id, "triaged": triaged}


async def _run_storm(job: Job, deps: AlertDeps, storm_id: int) -> Mapping[str, Any]:
    storm = await deps.alerts.storm(storm_id)
    sink = SlackThread(deps.slack, deps.queue, f"storm:{storm_id}", storm.channel, job_id=job.job_id,
                       pacer=deps.pacer)
    members = await deps.alerts.storm_members(storm_id)
    summary_ts = storm.summary_ts or await sink.post("summary", storm_summary(storm.channel, members))
    if storm.summary_ts is None:
        await deps.alerts.set_storm_summary(storm_id, summary_ts)
        storm = await deps.alerts.storm(storm_id)
    triaged = 0
    while True:
        members = await deps.alerts.storm_members(storm_id)
        pending = sorted((g for g in members if g.anchor_ts is None),
                         key=lambda g: (-severity_rank(g.severity), g.fired_at, g.group_id))
        if not pending:
            break
        for g in pending:
            await process_group(g.group_id, deps, job.job_id, storm=storm)
            triaged += 1
            await sink.update(summary_ts, storm_summary(storm.channel, await deps.alerts.storm_members(storm_id)))
    return {"storm_id": storm_id, "triaged": triaged}


async def process_group(group_id: int, deps: AlertDeps, job_id: int, *, storm: Storm | None) -> int:
    """Show the group's unhandled notifications, in order. Returns how many were handled.

    They are read a pass at a time; a repeat with another notification behind it changes
    nothing that the later one will not redraw (a run of repeats redraws the group's
    message once, for the last of them), so such runs are marked handled together."""
    handled = 0
    async with deps.alerts.group_lock(group_id):
        while pending := await deps.alerts.unhandled(group_id, PASS_SIZE):
            g = await deps.alerts.group(group_id)
            run: list[int] = []
            for i, n in enumerate(pending):
                if (n.action == "repeat" and i + 1 < len(pending) and g.anchor_ts and g.channel is not None
                        and n.generation == g.generation):
                    run.append(n.notification_id)
                    continue
                if run:
                    await deps.alerts.mark_handled_many(run)
                    handled, run = handled + len(run), []
                g = await deps.alerts.group(group_id)
                if g.anchor_ts is None and g.storm_id is not None and storm is None:
                    return handled  # a storm member's first message is the storm job's to post, in severity order
                if n.generation != g.generation:
                    log.info("alert group %s: notification %s belongs to generation %s (now %s); skipped",
                             group_id, n.notification_id, n.generation, g.generation)
                elif g.channel is None:
                    log.warning("alert group %s (%s) is stored but not posted: %s", group_id, g.alertname, g.route)
                elif n.action == "repeat" and g.anchor_ts and await deps.alerts.later_unhandled(group_id,
                                                                                                 n.notification_id):
                    pass  # more arrived since this pass began: the last of them redraws
                else:
                    await _show(n, g, deps, job_id, storm)
                await deps.alerts.mark_handled(n.notification_id)
                handled += 1
            if run:
                await deps.alerts.mark_handled_many(run)
                handled += len(run)
    return handled


def _sink(g: AlertGroup, deps: AlertDeps, job_id: int) -> SlackThread:
    assert g.channel is not None
    return SlackThread(deps.slack, deps.queue, g.namespace, g.channel, job_id=job_id, pacer=deps.pacer,
                       thread_ts=g.thread_ts)


async def _show(n: Notification, g: AlertGroup, deps: AlertDeps, job_id: int, storm: Storm | None) -> None:
    sink = _sink(g, deps, job_id)
    if g.anchor_ts is None or n.action == "open":
        await _open(n, g, deps, sink, storm, job_id)
        return
    own_anchor = g.source != "slack"
    if n.action in ("resolve", "refire"):
        await sink.post_reply(event_reply(n.action, g), key=f"n:{n.notification_id}")
    if own_anchor:
        url = await deps.incident_url(g.incident_id)
        await sink.update(g.anchor_ts, alert_message(g, state="shown", incident_url=url))


async def _anchor(g: AlertGroup, sink: SlackThread, storm: Storm | None, url: str | None) -> tuple[str, str]:
    """The group's message and its thread: ``(anchor_ts, thread_ts)``, posted if need be."""
    if g.source == "slack":
        assert g.anchor_ts is not None  # the alert post itself
        return g.anchor_ts, g.anchor_ts
    if g.anchor_ts is not None and g.thread_ts is not None:
        # resumed after a crash: the group's message is posted (a storm member's is a reply in
        # the storm's thread, whose ts must never be used as a thread), so it is reused as is
        return g.anchor_ts, g.thread_ts
    if storm is not None and storm.summary_ts:
        anchor_ts = await sink.post("parent", alert_message(g, state="triaging", incident_url=url),
                                    thread_ts=storm.summary_ts)
        return anchor_ts, storm.summary_ts
    anchor_ts = await sink.post("parent", alert_message(g, state="triaging", incident_url=url))
    return anchor_ts, anchor_ts


async def _open(n: Notification, g: AlertGroup, deps: AlertDeps, sink: SlackThread, storm: Storm | None,
                job_id: int) -> None:
    subject = Subject.model_validate(g.subject) if g.subject else None
    s = subject or Subject()
    incident, created = await deps.store.get_or_create_incident(
        title=f"Alert {g.alertname or g.group_key}: {s.label() if subject else 'no subject'}", origin="alert",
        correlation_id=s.correlation_id, app_instance_id=s.app_instance_id, org_id=s.org_id,
        project_id=s.project_id, alert_group=g.incident_key,
    )
    url = await deps.incident_url(incident.incident_id)
    anchor_ts, thread_ts = await _anchor(g, sink, storm, url)
    sink.thread_ts = thread_ts
    await deps.alerts.set_thread(g.group_id, anchor_ts, thread_ts, incident.incident_id)
    if storm is None and g.channel:
        await deps.store.set_incident_thread(incident.incident_id, g.channel, thread_ts)
    diagnosis, run_id = None, None
    if subject is None:
        verdict: dict[str, Any] = {"no_subject": True, "incident_id": incident.incident_id}
    else:
        end = n.received_at
        narrator = None if storm is not None else ThreadObserver(sink, subject, incident_id=incident.incident_id,
                                                                  incident_url=url)
        observers = [narrator] if narrator is not None else []
        org_scope = (subject.org_id, subject.project_id) if subject.org_id else None
        try:
            rec = await run_recorded(store=deps.store, sources=deps.sources, subject=subject,
                                     window=Window(end - DEFAULT_WINDOW, end), now=end, origin="alert",
                                     observers=observers, row_cap=deps.settings.evidence_row_cap,
                                     actor="alertmanager" if g.source != "slack" else "slack-alert",
                                     org_scope=org_scope, metrics=deps.metrics, job_id=job_id,
                                     incident=OpenedIncident(incident, created))
            if narrator is not None:
                await narrator.drain()
            verdict = verdict_of(rec.outcome.diagnosis, incident.incident_id)
            diagnosis, run_id = rec.outcome.diagnosis, rec.run_id
        except Exception as exc:
            log.exception("alert group %s: the diagnosis failed", g.group_id)
            verdict = {"error": f"{type(exc).__name__}", "incident_id": incident.incident_id}
    await deps.alerts.set_verdict(g.group_id, verdict)
    g = await deps.alerts.group(g.group_id)
    if g.source == "slack":
        await sink.post_reply(verdict_reply(g), key="verdict")
    else:
        await sink.update(anchor_ts, alert_message(g, state="shown", incident_url=url))
    if diagnosis is not None and deps.approvals is not None and g.channel:
        await deps.approvals.after_diagnosis(incident.incident_id, diagnosis, g.channel, thread_ts)
    if diagnosis is not None:
        await enqueue_after_diagnosis(deps.queue, deps.settings, incident.incident_id, run_id, diagnosis, g.channel,
                                      thread_ts)
