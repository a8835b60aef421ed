"""Slack listeners for approvals and the incident timeline: reactions on prompts (votes),
their removal (retractions), the prompt's buttons, the pin reaction that adds a message
to its incident's timeline, and ``/recon freezes`` / ``/recon unfreeze``. Thin: bolt's
matchers pick the listener by the reaction (pure: no I/O before the ack); the listener
finds the prompt or hands the message to a flow (``bot.flows.approvals``,
``bot.flows.pin``, ``bot.flows.freezes``).

A reaction no listener takes (any other emoji, or not on a message) is answered by the
last listener, which does nothing: bolt answers an unhandled event with 404, and Slack
would deliver it again.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncBoltContext
from slack_sdk.web.async_client import AsyncWebClient

from bot.flows.approval_intake import cast, on_reaction
from bot.flows.approvals import ApprovalFlow
from bot.flows.freezes import freezes_answer, unfreeze
from bot.flows.pin import PinDeps, pin, thread_message
from bot.slack.commands import ReconCommand

log = logging.getLogger(__name__)

Listener = Callable[..., Awaitable[None]]
Matcher = Callable[..., Awaitable[bool]]


def register(app: AsyncApp, flow: ApprovalFlow) -> None:
    votes, pins = vote_reaction(flow), pin_reaction(flow.settings.pin_emoji)
    app.event("reaction_added", matchers=[on_a_message, votes])(reaction_added(flow))
    app.event("reaction_added", matchers=[on_a_message, pins])(pinned(PinDeps(flow.store, flow.queue,
                                                                               flow.approvals)))
    app.event("reaction_added")(nothing)
    app.event("reaction_removed", matchers=[on_a_message, votes])(reaction_removed(flow))
    app.event("reaction_removed")(nothing)
    app.action("recon_approve")(button(flow, "approve"))
    app.action("recon_decline")(button(flow, "decline"))


def _reaction(event: dict[str, Any]) -> tuple[str, str, str, str]:
    """``(channel, ts, user, reaction)`` of a reaction event."""
    item = event.get("item") or {}
    return (str(item.get("channel") or ""), str(item.get("ts") or ""), str(event.get("user") or ""),
            str(event.get("reaction") or ""))


async def on_a_message(event: dict[str, Any]) -> bool:
    """A matcher: a person's reaction to a message."""
    channel, ts, user, _ = _reaction(event)
    return (event.get("item") or {}).get("type") == "message" and bool(channel and ts and user)


def vote_reaction(flow: ApprovalFlow) -> Matcher:
    """A matcher: the reaction is a vote (``RECON_APPROVE_EMOJI`` / ``RECON_DECLINE_EMOJI``)."""
    async def matches(event: dict[str, Any]) -> bool:
        return flow.vote_of(_reaction(event)[3]) is not None

    return matches


def pin_reaction(pin_emoji: str) -> Matcher:
    """A matcher: the reaction is ``RECON_PIN_EMOJI`` (any skin tone)."""
    async def matches(event: dict[str, Any]) -> bool:
        return _reaction(event)[3].split("::")[0] == pin_emoji

    return matches


async def nothing() -> None:
    """Any other reaction: acked, nothing to do."""


def reaction_added(flow: ApprovalFlow) -> Listener:
    """A vote by reaction, when the message is an approval prompt (or one being posted)."""
    async def handle(body: dict[str, Any], event: dict[str, Any]) -> None:
        channel, ts, user, reaction = _reaction(event)
        event_key = f"slack:{body.get('event_id') or f'{channel}:{ts}:{user}:{reaction}:+'}"
        # a prompt's, or possibly one being posted (bot.flows.approval_intake holds it)
        await on_reaction(flow, channel=channel, ts=ts, user=user, reaction=reaction, added=True,
                          dedup_key=event_key)

    return handle


def pinned(deps: PinDeps) -> Listener:
    """The pin reaction: the message joins its incident's timeline (``bot.flows.pin``)."""
    async def handle(event: dict[str, Any], client: AsyncWebClient) -> None:
        channel, ts, user, _ = _reaction(event)
        found = await thread_message(deps, client, channel, ts)
        if found is not None:
            await pin(deps, client, found, user)

    return handle


def reaction_removed(flow: ApprovalFlow) -> Listener:
    """A vote's reaction removed from a prompt: the vote is retracted."""
    async def handle(body: dict[str, Any], event: dict[str, Any]) -> None:
        channel, ts, user, reaction = _reaction(event)
        vote = flow.vote_of(reaction)
        if vote is None:
            return
        key = f"slack:{body.get('event_id') or f'{channel}:{ts}:{user}:{vote}:-'}"
        await on_reaction(flow, channel=channel, ts=ts, user=user, reaction=reaction, added=False, dedup_key=key)

    return handle


def button(flow: ApprovalFlow, vote: str) -> Listener:
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


def freezes_listener(flow: ApprovalFlow) -> Listener:
    """``/recon freezes`` and ``/recon unfreeze <incident>`` (``bot.flows.freezes``): the
    answer is the ack; asking the approvers follows it."""
    async def handle(ack: AsyncAck, command: dict[str, Any], context: AsyncBoltContext) -> None:
        cmd: ReconCommand = context["recon"]
        if cmd.action == "freezes":
            await ack(text=await freezes_answer(flow), response_type="ephemeral")
            return
        asked = await unfreeze(flow, cmd.incident_id or "", channel=str(command.get("channel_id") or ""),
                               user=command.get("user_id"))
        await ack(text=asked.answer)
        if asked.followup is not None:
            await asked.followup()

    return handle
