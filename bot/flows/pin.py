"""A pinned message joins its incident's timeline.

Someone reacts with ``RECON_PIN_EMOJI`` (default :pushpin:) to a message in an
incident's thread (handlers/approvals.py routes the reaction here, after the ack):

1. ``thread_message``: read the message's thread (Slack answers a reply with its whole
   thread, the parent first) and find the incident whose thread it is
   (``Store.incident_by_thread``). A message outside an incident thread, one that
   cannot be read, or an approval prompt (its reactions are votes) is left alone.
2. ``pin``: once per message (``JobQueue.first_delivery`` on ``pin:<channel>:<ts>``),
   a ``pinned`` timeline event with the message's text (capped), its author and who
   pinned it; then a :bookmark: on the message, so people see it was taken.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.store.approvals import ApprovalStore
from bot.store.jobs import JobQueue
from bot.store.store import Incident, Store

log = logging.getLogger(__name__)

MAX_DESCRIPTION = 500
MAX_TEXT = 4000


@dataclass(frozen=True, slots=True)
class PinDeps:
    store: Store
    queue: JobQueue
    approvals: ApprovalStore


@dataclass(frozen=True, slots=True)
class ThreadMessage:
    """A message of an incident's thread, as Slack returned it."""

    channel: str
    ts: str
    message: dict[str, Any]
    incident: Incident


async def thread_message(deps: PinDeps, client: AsyncWebClient, channel: str, ts: str) -> ThreadMessage | None:
    """The message ``channel``/``ts`` and the incident whose thread holds it, or None."""
    if await deps.approvals.by_message(channel, ts) is not None:
        return None  # an approval prompt: reactions on it are votes
    try:
        resp = await client.conversations_replies(channel=channel, ts=ts, limit=200)
    except SlackApiError as exc:
        log.info("pin on %s/%s: cannot read the message: %s", channel, ts, exc.response.get("error"))
        return None
    messages: list[dict[str, Any]] = resp.get("messages") or []
    msg = next((m for m in messages if m.get("ts") == ts), None)
    if msg is None:
        return None
    parent = messages[0]
    incident = await deps.store.incident_by_thread(channel, str(parent.get("thread_ts") or parent.get("ts")))
    return ThreadMessage(channel, ts, msg, incident) if incident is not None else None


async def pin(deps: PinDeps, client: AsyncWebClient, found: ThreadMessage, user: str) -> bool:
    """Add the message to its incident's timeline, once. True if this call added it."""
    channel, ts, msg, incident = found.channel, found.ts, found.message, found.incident
    if not await deps.queue.first_delivery(f"pin:{channel}:{ts}"):
        return False
    text = str(msg.get("text") or "") or "(a message with attachments or blocks)"
    await deps.store.add_timeline_event(
        incident_id=incident.incident_id, run_id=None, type="pinned", source="slack",
        description=text[:MAX_DESCRIPTION],
        details={"channel": channel, "message_ts": ts, "author": msg.get("user") or msg.get("bot_id"),
                 "pinned_by": user, "text": text[:MAX_TEXT]},
        actor=user, correlation_id=incident.correlation_id)
    log.info("pinned %s/%s to %s's timeline", channel, ts, incident.incident_id)
    try:  # people see it was taken: a bookmark on the message
        await client.reactions_add(channel=channel, timestamp=ts, name="bookmark")
    except SlackApiError as exc:
        log.info("could not mark %s/%s as pinned: %s", channel, ts, exc.response.get("error"))
    return True
