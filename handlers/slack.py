"""Bolt listeners for Slack: thin. Verify (bolt and the HTTP route do), parse, store
one durable job, ack. The work itself runs in a worker (``bot.flows``)."""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.web.async_client import AsyncWebClient

from bot.errors import BadInput, StoreError
from bot.flows.approvals import ApprovalFlow
from bot.flows.slack_diagnosis import KIND as DIAGNOSE
from bot.flows.slack_diagnosis import diagnosis_payload
from bot.flows.slack_verify import KIND as VERIFY
from bot.flows.slack_verify import verify_payload
from bot.slack.commands import USAGE, ReconCommand, parse, subject_key, thread_link
from bot.store.jobs import JobQueue, job_namespace
from handlers.alerts import AlertIntakeDeps, alert_post
from handlers.approvals import freeze_command
from handlers.approvals import register as register_approvals

log = logging.getLogger(__name__)


@dataclass(slots=True)
class SlackHandlerDeps:
    queue: JobQueue
    alerts: AlertIntakeDeps | None = None
    approvals: ApprovalFlow | None = None
    verify: Callable[[ReconCommand, dict[str, Any], AsyncAck], Awaitable[None]] | None = None
    now: Callable[[], datetime] = lambda: datetime.now(UTC)


def register(app: AsyncApp, deps: SlackHandlerDeps) -> None:
    app.command("/recon")(recon_command(deps))
    app.event("app_mention")(mention(deps))
    if deps.approvals is not None:
        register_approvals(app, deps.approvals, deps.queue)
    # Message events arrive for every channel the bot is in: alert posts by other
    # integrations in watched channels are triaged; everything else is left alone.
    app.event("message")(message(deps))


def message(deps: SlackHandlerDeps) -> Callable[..., Any]:
    async def handle(body: dict[str, Any], event: dict[str, Any], request: AsyncBoltRequest) -> None:
        if deps.alerts is None:
            return
        event_id = str(body.get("event_id") or "") or None
        # the event is recorded in the intake's own transaction: concurrent redeliveries count once
        try:
            intake = await alert_post(deps.alerts, event, event_id=event_id, retry_num=retry_num(request.headers))
        except BadInput as exc:
            log.warning("alert post %s in %s not taken in: %s", event.get("ts"), event.get("channel"), exc)
            return
        if intake is not None:
            log.info("alert post %s in %s: group %s %s", event.get("ts"), event.get("channel"),
                     intake.group.group_id, intake.action)

    return handle


def recon_command(deps: SlackHandlerDeps) -> Callable[..., Any]:
    async def handle(ack: AsyncAck, command: dict[str, Any]) -> None:
        text = str(command.get("text") or "")
        try:
            cmd = parse(text)
        except BadInput as exc:
            await ack(text=f":warning: {exc}\n\n{USAGE}")
            return
        if cmd.action in ("freezes", "unfreeze"):
            if deps.approvals is None:
                await ack(text=":warning: approvals are not set up on this recon")
            else:
                await freeze_command(deps.approvals, cmd, command, ack)
            return
        if cmd.action == "verify":
            if deps.verify is None:
                await ack(text=":warning: verification is not set up on this recon")
            else:
                await deps.verify(cmd, command, ack)
            return
        if cmd.action == "help" or cmd.subject is None:
            await ack(text=USAGE)
            return
        channel = str(command.get("channel_id") or "")
        user = command.get("user_id")
        payload = diagnosis_payload(cmd.subject, channel=channel, user=user, since=cmd.since, now=deps.now())
        try:
            job, created = await deps.queue.enqueue(DIAGNOSE, f"{DIAGNOSE}:{subject_key(cmd.subject)}", payload)
        except StoreError:
            log.exception("could not store /recon %s", cmd.subject.label())
            await ack(text=":x: recon could not accept this request (its store is unavailable); nothing was "
                           "started. Please try again in a minute.")
            return
        label = cmd.subject.label()
        if created:
            log.info("queued job %s: diagnose %s for %s in %s", job.job_id, label, user, channel)
            await ack(text=f":mag: Diagnosing {label} over the last {_human(cmd.since.total_seconds())}. "
                           "The findings will follow in a thread in this channel.")
            return
        parent = await deps.queue.post_get(job_namespace(job.job_id), "parent")
        if parent is not None and parent.ts:
            await ack(text=f":hourglass_flowing_sand: A diagnosis of {label} is already running: "
                           f"<{thread_link(parent.channel, parent.ts)}|its thread>.")
        else:
            await ack(text=f":hourglass_flowing_sand: A diagnosis of {label} is already queued; "
                           "its thread will appear shortly.")

    return handle


_MENTION = re.compile(r"<@[A-Z0-9]+(?:\|[^>]*)?>")


def retry_num(request_headers: Mapping[str, Any]) -> int:
    v = request_headers.get("x-slack-retry-num")
    v = v[0] if isinstance(v, list) and v else v
    try:
        return int(v) if v else 0
    except ValueError:
        return 0


def mention(deps: SlackHandlerDeps) -> Callable[..., Any]:
    """``@recon <correlation_id>``: the same diagnosis as /recon, in the mention's thread
    (or its own thread). Each event is handled once, however often Slack delivers it."""

    async def handle(body: dict[str, Any], event: dict[str, Any], request: AsyncBoltRequest,
                     client: AsyncWebClient) -> None:
        event_id = str(body.get("event_id") or "")
        text = _MENTION.sub(" ", str(event.get("text") or "")).strip()
        channel = str(event.get("channel") or "")
        cmd: ReconCommand | None = None
        answer = USAGE
        try:
            cmd = parse(text)
        except BadInput as exc:
            answer = f":warning: {exc}\n\n{USAGE}"
        if cmd is None or cmd.subject is None:
            if await deps.queue.first_delivery(event_id, retry_num(request.headers)):
                await client.chat_postMessage(channel=channel, thread_ts=event.get("thread_ts") or event.get("ts"),
                                              text=answer)
            return
        payload = diagnosis_payload(cmd.subject, channel=channel, user=event.get("user"), since=cmd.since,
                                    now=deps.now())
        job, created = await deps.queue.accept_event(event_id, retry_num(request.headers), DIAGNOSE,
                                                     f"{DIAGNOSE}:{subject_key(cmd.subject)}", payload)
        if job is None:
            log.info("event %s delivered again; already handled", event_id)
        elif not created:
            parent = await deps.queue.post_get(job_namespace(job.job_id), "parent")
            where = f"<{thread_link(parent.channel, parent.ts)}|its thread>" if parent and parent.ts else "its thread"
            await client.chat_postMessage(channel=channel, thread_ts=event.get("ts"),
                                          text=f"A diagnosis of {cmd.subject.label()} is already running: {where}.")

    return handle


def _human(seconds: float) -> str:
    if seconds % 86400 == 0:
        return f"{int(seconds // 86400)}d"
    if seconds % 3600 == 0:
        return f"{int(seconds // 3600)}h"
    return f"{int(seconds // 60)}m"


def verify_command(queue: JobQueue) -> Callable[[ReconCommand, dict[str, Any], AsyncAck], Awaitable[None]]:
    """``/recon verify <incident>``: stored as a job, acked, answered in the incident's thread."""

    async def handle(cmd: ReconCommand, command: dict[str, Any], ack: AsyncAck) -> None:
        incident_id = cmd.incident_id or ""
        payload = verify_payload(incident_id, str(command.get("channel_id") or ""), command.get("user_id"))
        try:
            _, created = await queue.enqueue(VERIFY, f"{VERIFY}:{incident_id}", payload)
        except StoreError:
            await ack(text=":x: recon could not accept this request (its store is unavailable); try again.")
            return
        await ack(text=(f":mag: Verifying {incident_id}: the checks run again over its scope; before against "
                        "after follows in its thread." if created else
                        f":hourglass_flowing_sand: A verification of {incident_id} is already running."))

    return handle
