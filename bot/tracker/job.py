"""The durable job ``tracker_ticket``: file (or update) an incident's follow-up tickets.

Payload: ``{"incident_id": "INC-…", "run_id": 12, "event": "diagnosis"}`` (one ticket per
follow-up of that run; a later run comments what changed) or ``"event": "recovered"``
(one comment per stored ticket). The worker wires it as one registry entry::

    async def tracker_ticket(job: Job) -> dict[str, Any]:
        return (await run_ticket_job(job.payload, deps)).as_result()

Per layer, tracker calls are retried here with backoff (or the delay the tracker asked
for) while the wait is short; a longer wait, or retries used up, raises
``TrackerRetryable`` out of the job (its ``retry_after_s`` is when to run it again), and
the ticket's exactly-once rules make the rerun safe. A permanent failure
(``TrackerRejected``) is posted in the thread once (a keyed post) and on the timeline, and
does not fail the job: retrying cannot help. Each ticket's link is posted in the thread
(keyed per layer, so a rerun of the job does not post it twice); a ticket created,
found or commented is a timeline event.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Literal, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from bot.errors import BadInput, TrackerRejected, TrackerRetryable
from bot.tracker.base import Tracker
from bot.tracker.ensure import Ensured, comment_recovered, ensure_ticket
from bot.tracker.model import (
    IncidentFacts,
    LayerOutcome,
    TicketOutcome,
    TicketSpec,
    check_incident_id,
    safe_key,
    safe_url,
)
from bot.tracker.store import TicketStore

log = logging.getLogger(__name__)

JOB_KIND = "tracker_ticket"
T = TypeVar("T")


class TicketJob(BaseModel):
    """The job's payload."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    incident_id: str
    run_id: int | None = None
    event: Literal["diagnosis", "recovered"] = "diagnosis"

    @field_validator("incident_id")
    @classmethod
    def _incident(cls, v: str) -> str:
        return check_incident_id(v)


class TicketDeps(Protocol):
    """What the job needs; the server builds one from its store, tracker and Slack thread."""

    @property
    def tickets(self) -> TicketStore:
        """The ``tracker_tickets`` table."""

    @property
    def tracker(self) -> Tracker:
        """The configured tracker."""

    async def incident_facts(self, incident_id: str, run_id: int | None) -> IncidentFacts:
        """The incident's follow-ups (of ``run_id``, else its latest run), ids, evidence
        digests, and a signed report link."""

    async def post_to_thread(self, incident_id: str, key: str, text: str) -> None:
        """Post ``text`` (Slack mrkdwn, already escaped) in the incident's thread, once per
        ``key`` (a rerun with the same key posts nothing)."""

    async def add_timeline(self, incident_id: str, type: str, description: str,
                           details: Mapping[str, Any]) -> None:
        """Append a timeline event (source ``tracker``)."""


Sleep = Callable[[float], Awaitable[None]]


class RetryPolicy:
    """In-job retries: ``attempts`` tries per call, waits of at most ``max_wait_s``."""

    def __init__(self, attempts: int = 4, base_s: float = 1.0, max_wait_s: float = 30.0,
                 sleep: Sleep = asyncio.sleep) -> None:
        self.attempts = attempts
        self.base_s = base_s
        self.max_wait_s = max_wait_s
        self.sleep = sleep

    def delay(self, attempt: int, exc: TrackerRetryable) -> float:
        if exc.retry_after_s is not None:
            return float(exc.retry_after_s)
        return float(self.base_s * 2.0 ** (attempt - 1) * (1 + random.random() / 4))  # noqa: S311 (jitter)


async def with_retries(call: Callable[[], Awaitable[T]], policy: RetryPolicy) -> T:
    """``call()``, again after a ``TrackerRetryable`` while tries and patience last."""
    attempt = 1
    while True:
        try:
            return await call()
        except TrackerRetryable as exc:
            wait = policy.delay(attempt, exc)
            if attempt >= policy.attempts or wait > policy.max_wait_s:
                raise
            log.info("tracker: %s; trying again in %.1f s", exc, wait)
            attempt += 1
            await policy.sleep(wait)


async def run_ticket_job(payload: Mapping[str, Any], deps: TicketDeps,
                         policy: RetryPolicy | None = None) -> TicketOutcome:
    """Run one ``tracker_ticket`` job (see the module's docstring)."""
    try:
        job = TicketJob.model_validate(dict(payload))
    except ValidationError as exc:
        raise BadInput(f"tracker_ticket payload: {exc.errors()[0]['msg']}") from None
    policy = policy or RetryPolicy()
    facts = await deps.incident_facts(job.incident_id, job.run_id)
    if job.event == "recovered":
        return await _recovered(job.incident_id, facts, deps, policy)
    outcomes: list[LayerOutcome] = []
    for follow_up in facts.follow_ups:
        spec = TicketSpec.of(facts, follow_up)
        outcomes.append(await _one_layer(spec, deps, policy))
    return TicketOutcome(job.incident_id, tuple(outcomes))


async def _recovered(incident_id: str, facts: IncidentFacts, deps: TicketDeps,
                     policy: RetryPolicy) -> TicketOutcome:
    try:
        done = await with_retries(
            lambda: comment_recovered(deps.tickets, deps.tracker, incident_id, facts.report_url), policy)
    except TrackerRejected as exc:
        await _report_failure(incident_id, "recovered", "the recovery comment", exc, deps)
        return TicketOutcome(incident_id, (LayerOutcome("*", "failed", error=str(exc)),))
    for e in done:
        if e.action == "commented":
            await deps.add_timeline(incident_id, "ticket_commented", f"{e.ticket.key}: the incident recovered",
                                    _details(e))
    return TicketOutcome(incident_id, tuple(LayerOutcome("*", e.action, e.ticket) for e in done))


async def _report_failure(incident_id: str, key: str, what: str, exc: TrackerRejected, deps: TicketDeps) -> None:
    """Once per job and key: the thread (keyed post) and the timeline."""
    await deps.post_to_thread(incident_id, f"ticket-failed:{key}",
                              f"Could not post {what} in {deps.tracker.name}: {_mrkdwn(exc.reason)}. "
                              "Fix the tracker's settings or token; the next diagnosis tries again.")
    await deps.add_timeline(incident_id, "ticket_failed", f"{what}: {exc.reason}",
                            {"key": key, "tracker": deps.tracker.name, "http_status": exc.http_status})


async def _one_layer(spec: TicketSpec, deps: TicketDeps, policy: RetryPolicy) -> LayerOutcome:
    try:
        got = await with_retries(lambda: ensure_ticket(deps.tickets, deps.tracker, spec), policy)
    except TrackerRejected as exc:
        await _report_failure(spec.incident_id, spec.layer, f"the `{spec.layer}` follow-up", exc, deps)
        return LayerOutcome(spec.layer, "failed", error=str(exc))
    if got.action in ("created", "found", "commented"):
        what = {"created": "created", "found": "found by its marker", "commented": "commented"}[got.action]
        await deps.add_timeline(spec.incident_id, f"ticket_{'commented' if got.action == 'commented' else 'created'}",
                                f"{spec.layer}: {got.ticket.key} {what}", _details(got, spec.layer))
    await deps.post_to_thread(spec.incident_id, f"ticket:{spec.layer}",
                              f"Follow-up for `{spec.layer}`: {_slack_link(got.ticket.url, got.ticket.key)}")
    return LayerOutcome(spec.layer, got.action, got.ticket)


def _details(e: Ensured, layer: str | None = None) -> dict[str, Any]:
    d: dict[str, Any] = {"tracker": e.ticket.tracker, "target": e.ticket.target, "key": e.ticket.key,
                         "url": e.ticket.url, "action": e.action}
    if layer is not None:
        d["layer"] = layer
    return d


def _mrkdwn(text: str) -> str:
    """Escape Slack's three control characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _slack_link(url: str, key: str) -> str:
    """The ticket's key linked to its URL; a URL or key of another shape is not shown."""
    link, text = safe_url(url), safe_key(key) or "the ticket"
    return f"<{link}|{_mrkdwn(text)}>" if link else _mrkdwn(text)
