"""Who consumes each kind of durable job: the one place that says it.

- ``diagnose``: queued by handlers/slack.py ``recon_command`` (``/recon <id>``) and
  ``mention`` (``@recon <id>``); run by ``bot.flows.slack_diagnosis.run_diagnosis_job``.
- ``verify``: queued by handlers/slack.py ``verify_command`` (``/recon verify``); run by
  ``bot.flows.slack_verify.run_verify_job``.
- ``reconcile``: queued by handlers/shortcuts.py ``submission`` (the reconcile modal of the
  shortcuts ``recon_reconcile``/``recon_open``) and ``file_shared`` (a CSV shared in an
  incident's thread); run by ``bot.flows.slack_reconcile.run_reconcile_job``.
- ``alert``: queued by ``bot.store.alerts.AlertStore.intake`` (a webhook or an alert
  post opens, reopens or escalates a group); run by ``bot.flows.alert_triage.run_alert_job``.
- ``alert_storm``: queued by ``AlertStore.intake`` when a storm starts; run by
  ``bot.flows.alert_triage.run_storm_job``.
- ``approval_vote``: queued by ``bot.flows.approval_intake`` for a vote that cannot be
  checked now (the approvers' groups unreadable) or that landed on a prompt still being
  posted; run by ``bot.flows.approval_intake.vote_job_handler``.
- ``tracker_ticket``: queued by ``bot.flows.followup_tickets`` (after a recorded diagnosis
  with follow-ups, from ``diagnose``, ``alert``, ``verify`` and the CLI's ``recon
  diagnose``/``recon verify``, when ``RECON_TRACKER`` is set); run by
  ``bot.flows.followup_tickets.TicketServices.run_job`` (``bot.tracker.job.run_ticket_job``).
  Registered only when a tracker is configured (queued ones wait until one is).

``JobConsumers.handlers()`` is what the ``bot.worker.Worker`` of ``recon serve`` runs,
and it claims only these kinds. A new kind of job gets its line here and in ``handlers``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bot.flows.alert_triage import AlertDeps, run_alert_job, run_storm_job
from bot.flows.approval_intake import VOTE_JOB, vote_job_handler
from bot.flows.approvals import ApprovalFlow
from bot.flows.followup_tickets import KIND as TICKET
from bot.flows.followup_tickets import TicketServices
from bot.flows.slack_diagnosis import KIND as DIAGNOSE
from bot.flows.slack_diagnosis import SlackDiagnosisDeps, run_diagnosis_job
from bot.flows.slack_reconcile import KIND as RECONCILE
from bot.flows.slack_reconcile import run_reconcile_job
from bot.flows.slack_verify import KIND as VERIFY
from bot.flows.slack_verify import run_verify_job
from bot.store.alerts import ALERT_JOB, STORM_JOB
from bot.store.jobs import Job
from bot.worker import JobHandler


@dataclass(frozen=True, slots=True)
class JobConsumers:
    """The flows' dependencies; ``handlers()``: job kind → the flow that runs it."""

    diagnosis: SlackDiagnosisDeps
    alerts: AlertDeps
    approvals: ApprovalFlow
    tickets: TicketServices | None = None  # None: no RECON_TRACKER

    def handlers(self) -> Mapping[str, JobHandler]:
        out: dict[str, JobHandler] = {DIAGNOSE: self.diagnose, VERIFY: self.verify, ALERT_JOB: self.alert,
                                      STORM_JOB: self.storm, VOTE_JOB: vote_job_handler(self.approvals),
                                      RECONCILE: self.reconcile}
        if self.tickets is not None:
            out[TICKET] = self.tickets.run_job
        return out

    async def diagnose(self, job: Job) -> dict[str, Any]:
        return dict(await run_diagnosis_job(job, self.diagnosis))

    async def verify(self, job: Job) -> dict[str, Any]:
        return dict(await run_verify_job(job, self.diagnosis))

    async def reconcile(self, job: Job) -> dict[str, Any]:
        return dict(await run_reconcile_job(job, self.diagnosis))

    async def alert(self, job: Job) -> dict[str, Any]:
        return dict(await run_alert_job(job, self.alerts))

    async def storm(self, job: Job) -> dict[str, Any]:
        return dict(await run_storm_job(job, self.alerts))
