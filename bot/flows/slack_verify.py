"""``/recon verify <incident>`` as a durable job: verify, then show before against after
in the incident's thread (or where it was asked), and ask for an unfreeze when the
incident's frozen scope now shows attribution verified."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from bot.flows.followup_tickets import enqueue_after_verify
from bot.flows.slack_diagnosis import SlackDiagnosisDeps
from bot.flows.verify import verify
from bot.render.slack import verification_message
from bot.slack.poster import SlackThread
from bot.store.jobs import Job, job_namespace

KIND = "verify"


async def run_verify_job(job: Job, deps: SlackDiagnosisDeps) -> Mapping[str, Any]:
    p = job.payload
    incident = await deps.store.get_incident(p["incident_id"])
    channel = (incident.slack_channel if incident and incident.slack_channel else p["channel"])
    thread_ts = incident.slack_thread_ts if incident and incident.slack_channel else None
    await deps.store.abandon_runs(job.job_id, "an earlier attempt of this job stopped before finishing")
    v = await verify(store=deps.store, sources=deps.sources, incident_id=p["incident_id"],
                     now=datetime.fromisoformat(p["requested_at"]), actor=p.get("user") or "recon",
                     row_cap=deps.settings.evidence_row_cap, metrics=deps.metrics, job_id=job.job_id)
    sink = SlackThread(deps.slack, deps.queue, job_namespace(job.job_id), channel, job_id=job.job_id,
                       thread_ts=thread_ts)
    doc = v.as_dict()
    posted = await sink.post("verification", verification_message(doc, await deps.incident_url(p["incident_id"])),
                    thread_ts=thread_ts)
    if deps.approvals is not None:
        await deps.approvals.after_diagnosis(p["incident_id"], v.after, channel, thread_ts or "")
    await enqueue_after_verify(deps.queue, deps.settings, p["incident_id"], v.run.run_id, v.recovered, v.after,
                               channel, thread_ts or posted)
    return doc


def verify_payload(incident_id: str, channel: str, user: str | None) -> dict[str, Any]:
    return {"incident_id": incident_id, "channel": channel, "user": user,
            "requested_at": datetime.now(UTC).isoformat()}
