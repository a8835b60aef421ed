"""Posting a job's thread to Slack, exactly once per message.

Every message has a stable key within its job ("parent", "step:logs", …). Before it
posts, the poster notes the key in ``slack_posts`` (state ``posting``); after Slack
answers, it records the message's ``ts``. A job resumed after its process died skips
what is ``posted``; for a key left ``posting`` (the process died between the two) it
first looks in the channel or thread for a message carrying the key in its metadata,
and posts only if none is there. Replies go one at a time, in order.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient

from bot.render.slack import Message
from bot.slack.pace import ChannelPacer
from bot.store.jobs import JobQueue

log = logging.getLogger(__name__)
METADATA_EVENT = "recon_post"


class SlackThread:
    """A ThreadSink on Slack's Web API for one job."""

    def __init__(self, client: AsyncWebClient, queue: JobQueue, namespace: str, channel: str,
                 *, thread_ts: str | None = None, job_id: int | None = None,
                 pacer: ChannelPacer | None = None) -> None:
        self.client = client
        self.queue = queue
        self.namespace = namespace
        self.job_id = job_id
        self.channel = channel
        self.pacer = pacer
        self.thread_ts = thread_ts
        self.posted = 0
        self.skipped = 0

    def _metadata(self, key: str) -> dict[str, Any]:
        return {"event_type": METADATA_EVENT, "event_payload": {"ns": self.namespace, "key": key}}

    async def post_parent(self, msg: Message) -> str:
        ts = await self._post("parent", None, msg)
        self.thread_ts = ts
        return ts

    async def post_reply(self, msg: Message, key: str) -> str:
        if self.thread_ts is None:
            raise RuntimeError("post_parent must come before post_reply")
        return await self._post(key, self.thread_ts, msg)

    async def update(self, ts: str, msg: Message) -> None:
        if self.pacer is not None:
            await self.pacer.wait(self.channel)
        await self.client.chat_update(channel=self.channel, ts=ts, text=msg.text, blocks=msg.blocks)

    async def update_parent(self, msg: Message) -> None:
        if self.thread_ts is None:
            raise RuntimeError("post_parent must come before update_parent")
        if self.pacer is not None:
            await self.pacer.wait(self.channel)
        await self.client.chat_update(channel=self.channel, ts=self.thread_ts, text=msg.text, blocks=msg.blocks)

    async def post(self, key: str, msg: Message, *, thread_ts: str | None = None) -> str:
        """Post once under ``key``: at the top of the channel, or in ``thread_ts``."""
        return await self._post(key, thread_ts, msg)

    async def _post(self, key: str, thread_ts: str | None, msg: Message) -> str:
        existing = await self.queue.post_get(self.namespace, key)
        if existing is not None and existing.state == "posted" and existing.ts:
            self.skipped += 1
            return existing.ts
        if existing is not None:
            found = await self._find(key, thread_ts)
            if found is not None:
                log.info("%s: %s was already in Slack (ts %s); not posting it again", self.namespace, key, found)
                await self.queue.post_done(self.namespace, key, found)
                self.skipped += 1
                return found
        else:
            await self.queue.post_begin(self.namespace, key, self.channel, thread_ts, self.job_id)
        if self.pacer is not None:
            await self.pacer.wait(self.channel)
        resp = await self.client.chat_postMessage(
            channel=self.channel, thread_ts=thread_ts, text=msg.text, blocks=msg.blocks,
            metadata=self._metadata(key), unfurl_links=False, unfurl_media=False,
        )
        ts = str(resp["ts"])
        await self.queue.post_done(self.namespace, key, ts)
        self.posted += 1
        return ts

    async def _find(self, key: str, thread_ts: str | None) -> str | None:
        """The ts of a message this job posted under ``key``, if Slack has it."""
        cursor: str | None = None
        for _ in range(20):
            if thread_ts is None:
                resp = await self.client.conversations_history(channel=self.channel, include_all_metadata=True,
                                                               limit=200, cursor=cursor)
            else:
                resp = await self.client.conversations_replies(channel=self.channel, ts=thread_ts,
                                                               include_all_metadata=True, limit=200, cursor=cursor)
            messages: list[dict[str, Any]] = resp.get("messages", []) or []
            for m in messages:
                md = m.get("metadata") or {}
                payload = md.get("event_payload") or {}
                if md.get("event_type") == METADATA_EVENT and payload.get("ns") == self.namespace \
                        and payload.get("key") == key:
                    return str(m["ts"])
            cursor = (resp.get("response_metadata") or {}).get("next_cursor") or None
            if not cursor:
                return None
        return None
