"""Slack listeners for approvals and the incident timeline: reactions on prompts (votes),
their removal (retractions), the prompt's buttons, the pin reaction that adds a message
to its incident's timeline, and ``/recon freezes`` / ``/recon unfreeze``. Thin: find the
prompt or incident, hand the decision to ``bot.flows.approvals``."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.flows.approval_intake import cast, on_reaction
from bot.flows.approvals import ApprovalFlow
from bot.render.approvals import scope_lines
from bot.slack.commands import ReconCommand
from bot.store.jobs import JobQueue

log = logging.getLogger(__name__)


def register(app: AsyncApp, flow: ApprovalFlow, queue: JobQueue) -> None:
    app.event("reaction_added")(reaction_added(flow, queue))
    app.event("reaction_removed")(reaction_removed(flow))
    app.action("recon_approve")(button(flow, "approve"))
    app.action("recon_decline")(button(flow, "decline"))


def reaction_added(flow: ApprovalFlow, queue: JobQueue) -> Callable[..., Any]:
    async def handle(body: dict[str, Any], event: dict[str, Any], client: AsyncWebClient) -> None:
        item = event.get("item") or {}
        channel, ts, user = str(item.get("channel") or ""), str(item.get("ts") or ""), str(event.get("user") or "")
        reaction = str(event.get("reaction") or "")
        if item.get("type") != "message" or not channel or not ts or not user:
            return
        event_key = f"slack:{body.get('event_id') or f'{channel}:{ts}:{user}:{reaction}:+'}"
        if await on_reaction(flow, channel=channel, ts=ts, user=user, reaction=reaction, added=True,
                             dedup_key=event_key):
            return
        if reaction.split("::")[0] == flow.settings.pin_emoji:
            await pin(flow, queue, client, channel, ts, user)

    return handle


async def pin(flow: ApprovalFlow, queue: JobQueue, client: AsyncWebClient, channel: str, ts: str, user: str) -> None:
    """A pinned message of an incident's thread joins its timeline, once."""
    try:
        # for a reply, Slack answers with its whole thread, the parent first
        resp = await client.conversations_replies(channel=channel, ts=ts, limit=200)
    except SlackApiError as exc:
        log.info("pin on %s/%s: cannot read the message: %s", channel, ts, exc.response.get("error"))
        return
    messages: list[dict[str, Any]] = resp.get("messages") or []
    msg = next((m for m in messages if m.get("ts") == ts), None)
    if msg is None or not messages:
        return
    parent = messages[0]
    incident = await flow.store.incident_by_thread(channel, str(parent.get("thread_ts") or parent.get("ts")))
    if incident is None or not await queue.first_delivery(f"pin:{channel}:{ts}"):
        return
    text = str(msg.get("text") or "") or "(a message with attachments or blocks)"
    await flow.store.add_timeline_event(
        incident_id=incident.incident_id, run_id=None, type="pinned", source="slack",
        description=text[:500], details={"channel": channel, "message_ts": ts, "author": msg.get("user")
                                         or msg.get("bot_id"), "pinned_by": user, "text": text[:4000]},
        actor=user, correlation_id=incident.correlation_id)
    log.info("pinned %s/%s to %s's timeline", channel, ts, incident.incident_id)
    try:  # people see it was taken: a bookmark on the message
        await client.reactions_add(channel=channel, timestamp=ts, name="bookmark")
    except SlackApiError as exc:
        log.info("could not mark %s/%s as pinned: %s", channel, ts, exc.response.get("error"))


def reaction_removed(flow: ApprovalFlow) -> Callable[..., Any]:
    async def handle(body: dict[str, Any], event: dict[str, Any]) -> None:
        item = event.get("item") or {}
        channel, ts, user = str(item.get("channel") or ""), str(item.get("ts") or ""), str(event.get("user") or "")
        reaction = str(event.get("reaction") or "")
        vote = flow.vote_of(reaction)
        if vote is None or not channel or not ts or not user:
            return
        key = f"slack:{body.get('event_id') or f'{channel}:{ts}:{user}:{vote}:-'}"
        await on_reaction(flow, channel=channel, ts=ts, user=user, reaction=reaction, added=False, dedup_key=key)

    return handle


def button(flow: ApprovalFlow, vote: str) -> Callable[..., Any]:
    async def handle(ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        action = (body.get("actions") or [{}])[0]
        user = str((body.get("user") or {}).get("id") or "")
        try:
            prompt_id = int(str(action.get("value") or ""))
        except ValueError:
            return
        prompt = await flow.approvals.get(prompt_id)
        if prompt is None or not user:
            return
        key = f"action:{prompt_id}:{user}:{action.get('action_ts') or body.get('trigger_id')}"
        await cast(flow, prompt, user=user, vote="approve" if vote == "approve" else "decline", via="button",
                   dedup_key=key)

    return handle


async def freeze_command(flow: ApprovalFlow, cmd: ReconCommand, command: dict[str, Any], ack: AsyncAck) -> None:
    if cmd.action == "freezes":
        active = await flow.approvals.active_freezes()
        if not active:
            await ack(text=":sunny: No active freezes of manual customer-facing adjustments.")
            return
        lines = [f"*{len(active)} active freeze(s)* of manual customer-facing adjustments:"]
        for f in active[:20]:
            scope = "; ".join(scope_lines(f.scope)[:5])
            lines.append(f"• #{f.freeze_id} · incident {f.incident_id} · since {f.frozen_at:%Y-%m-%d %H:%M UTC} · "
                         f"by {', '.join(f'<@{u}>' for u in f.approved_by)} · {scope}")
        await ack(text="\n".join(lines)[:3000])
        return
    incident_id = cmd.incident_id or ""
    incident = await flow.store.get_incident(incident_id)
    if incident is None:
        await ack(text=f":warning: No incident {incident_id}.")
        return
    active = [f for f in await flow.approvals.freezes_of(incident_id) if f.status == "active"]
    if not active:
        await ack(text=f":sunny: Incident {incident_id} has no active freeze.")
        return
    await ack(text=f":hourglass_flowing_sand: Asking the approvers to lift {len(active)} freeze(s) of {incident_id}.")
    channel = incident.slack_channel or str(command.get("channel_id") or "")
    thread = incident.slack_thread_ts if incident.slack_channel else None
    for f in active:
        await flow.request_unfreeze(f, channel, thread,
                                    reason=f"requested by <@{command.get('user_id')}> with /recon unfreeze")
