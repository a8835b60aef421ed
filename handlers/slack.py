"""Bolt listeners for Slack: thin. Verify (bolt and the HTTP route do), parse, store
one durable job, ack. The work itself runs in a worker (``bot.flows``; who consumes
which job: ``bot.server.consumers``).

``/recon`` is one listener per subcommand, chosen by bolt: each listener's matcher
parses the text (``bot.slack.commands.parse``) and takes its subcommand; a listener
middleware hands the parsed command to the listener (``context["recon"]``). The last
listener takes the rest: ``help``, and text that does not parse (the reason, then the
usage). Every ``/recon`` listener and the mention's have an ``authorized`` middleware
first: a channel not in ``RECON_ALLOWED_CHANNELS`` or a person not in ``RECON_USERS``
(bot.slack.access) gets an ephemeral refusal, and no listener runs (the shortcuts and
CSV shares of handlers/shortcuts.py ask the same ``Access``). Slack events:
``app_mention`` (a diagnosis like ``/recon``), ``message`` (alert
posts in watched channels), and the approvals' reactions and buttons
(handlers/approvals.py).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncBoltContext
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse
from slack_sdk.web.async_client import AsyncWebClient

from bot.errors import BadInput, StoreError
from bot.flows.approvals import ApprovalFlow
from bot.flows.slack_diagnosis import KIND as DIAGNOSE
from bot.flows.slack_diagnosis import diagnosis_payload
from bot.flows.slack_verify import KIND as VERIFY
from bot.flows.slack_verify import verify_payload
from bot.render.mrkdwn import esc
from bot.slack.access import Access
from bot.slack.commands import USAGE, ReconCommand, parse, subject_key, thread_link
from bot.store.jobs import JobQueue, job_namespace
from handlers.alerts import AlertIntakeDeps, alert_post
from handlers.approvals import freezes_listener
from handlers.approvals import register as register_approvals
from handlers.shortcuts import SurfaceDeps, register_surfaces

log = logging.getLogger(__name__)

Listener = Callable[..., Awaitable[None]]
Middleware = Callable[..., Awaitable[BoltResponse | None]]
STORE_DOWN = (":x: recon could not accept this request (its store is unavailable); nothing was started. "
              "Please try again in a minute.")


@dataclass(slots=True)
class SlackHandlerDeps:
    queue: JobQueue
    alerts: AlertIntakeDeps | None = None
    approvals: ApprovalFlow | None = None
    verify: bool = True  # /recon verify is taken (else: it is not set up)
    surfaces: SurfaceDeps | None = None  # the shortcuts, their modal, CSV shares (handlers/shortcuts.py)
    access: Access | None = None  # RECON_ALLOWED_CHANNELS, RECON_USERS; None: anyone, anywhere
    now: Callable[[], datetime] = lambda: datetime.now(UTC)


def register(app: AsyncApp, deps: SlackHandlerDeps) -> None:
    register_recon(app, deps)
    app.event("app_mention", middleware=[authorized_mention(deps)])(mention(deps))
    if deps.approvals is not None:
        register_approvals(app, deps.approvals)
    if deps.surfaces is not None:  # its file_share listener comes before the catch-all below
        register_surfaces(app, replace(deps.surfaces, access=deps.access))
    # Message events arrive for every channel the bot is in: alert posts by other
    # integrations in watched channels are triaged; everything else is left alone.
    app.event("message")(message(deps))


def register_recon(app: AsyncApp, deps: SlackHandlerDeps) -> None:
    """``/recon``: the first listener whose matcher takes the command answers it."""
    allowed = authorized_command(deps.access)
    parsed = [allowed, parsed_command]
    freezes = freezes_listener(deps.approvals) if deps.approvals is not None else not_set_up("approvals")
    app.command("/recon", matchers=[subcommand("freezes", "unfreeze")], middleware=parsed)(freezes)
    verify = verify_command(deps.queue) if deps.verify else not_set_up("verification")
    app.command("/recon", matchers=[subcommand("verify")], middleware=parsed)(verify)
    app.command("/recon", matchers=[subcommand("diagnose", "org")], middleware=parsed)(recon_command(deps))
    app.command("/recon", middleware=[allowed])(usage)


def authorized_command(access: Access | None) -> Middleware:
    """A listener middleware: ``/recon`` from a channel and a person allowed to ask
    (bot.slack.access); else the refusal, ephemeral, as the ack."""
    async def check(ack: AsyncAck, command: dict[str, Any], next_: Callable[[], Awaitable[None]]
                    ) -> BoltResponse | None:
        channel, user = str(command.get("channel_id") or ""), str(command.get("user_id") or "")
        why = await access.refusal(channel, user) if access is not None else None
        if why is None:
            await next_()
            return None
        log.warning("refused /recon from %s in %s: %s", user, channel, why)
        return await ack(text=why, response_type="ephemeral")

    return check


def authorized_mention(deps: SlackHandlerDeps) -> Middleware:
    """A listener middleware: a mention from a channel and a person allowed to ask;
    else the refusal, as an ephemeral message to that person (once per event)."""
    async def check(body: dict[str, Any], event: dict[str, Any], request: AsyncBoltRequest, client: AsyncWebClient,
                    next_: Callable[[], Awaitable[None]]) -> BoltResponse | None:
        channel, user = str(event.get("channel") or ""), str(event.get("user") or "")
        why = await deps.access.refusal(channel, user) if deps.access is not None else None
        if why is None:
            await next_()
            return None
        log.warning("refused a mention by %s in %s: %s", user, channel, why)
        if user and await deps.queue.first_delivery(str(body.get("event_id") or ""), retry_num(request.headers)):
            await client.chat_postEphemeral(channel=channel, user=user, text=why,
                                            thread_ts=event.get("thread_ts"))
        return BoltResponse(status=200, body="")

    return check


def subcommand(*actions: str) -> Callable[[dict[str, Any]], Awaitable[bool]]:
    """A matcher: the text after ``/recon`` parses, as one of ``actions``."""
    async def matches(command: dict[str, Any]) -> bool:
        try:
            return parse(str(command.get("text") or "")).action in actions
        except BadInput:
            return False

    return matches


async def parsed_command(command: dict[str, Any], context: AsyncBoltContext,
                         next_: Callable[[], Awaitable[None]]) -> None:
    """A listener middleware: the parsed command, for the listener (its matcher parsed it)."""
    context["recon"] = parse(str(command.get("text") or ""))
    await next_()


async def usage(ack: AsyncAck, command: dict[str, Any]) -> None:
    """``/recon help``, and any text that does not parse: why, then the usage."""
    try:
        parse(str(command.get("text") or ""))
    except BadInput as exc:
        await ack(text=f":warning: {esc(exc)}\n\n{USAGE}")
        return
    await ack(text=USAGE)


def not_set_up(what: str) -> Listener:
    async def handle(ack: AsyncAck) -> None:
        await ack(text=f":warning: {what} {'are' if what.endswith('s') else 'is'} not set up on this recon")

    return handle


def recon_command(deps: SlackHandlerDeps) -> Listener:
    """``/recon <correlation_id> [since]`` / ``/recon app <id> [since]``: a diagnosis job,
    or the one already queued or running for that subject."""
    async def handle(ack: AsyncAck, command: dict[str, Any], context: AsyncBoltContext) -> None:
        cmd: ReconCommand = context["recon"]
        assert cmd.subject is not None  # the parser gives a diagnosis its subject
        channel = str(command.get("channel_id") or "")
        user = command.get("user_id")
        payload = diagnosis_payload(cmd.subject, channel=channel, user=user, since=cmd.since, now=deps.now())
        label = cmd.subject.label()
        try:
            job, created = await deps.queue.enqueue(DIAGNOSE, f"{DIAGNOSE}:{subject_key(cmd.subject)}", payload)
        except StoreError:
            log.exception("could not store /recon %s", label)
            await ack(text=STORE_DOWN)
            return
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


def verify_command(queue: JobQueue) -> Listener:
    """``/recon verify <incident>``: stored as a job, acked, answered in the incident's thread."""

    async def handle(ack: AsyncAck, command: dict[str, Any], context: AsyncBoltContext) -> None:
        cmd: ReconCommand = context["recon"]
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


def message(deps: SlackHandlerDeps) -> Listener:
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


_MENTION = re.compile(r"<@[A-Z0-9]+(?:\|[^>]*)?>")


def retry_num(request_headers: Mapping[str, Any]) -> int:
    v = request_headers.get("x-slack-retry-num")
    v = v[0] if isinstance(v, list) and v else v
    try:
        return int(v) if v else 0
    except ValueError:
        return 0


def mention(deps: SlackHandlerDeps) -> Listener:
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
            answer = f":warning: {esc(exc)}\n\n{USAGE}"
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
