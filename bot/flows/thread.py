"""The diagnosis as a Slack thread: a parent message, one reply per step as it
completes, and the parent updated with the verdict. Where the messages go is a
``ThreadSink``: Slack's Web API in the bot, the terminal in ``recon demo``.

The verdict is what people wait for, so a job shows it as soon as the diagnosis is
assembled (``verdict``), while the step replies still on their way go out in order
behind it; ``finish`` then waits for them and raises if one could not be posted (the
job fails and its retry posts the rest, once each, and the verdict again). A sink that
is read top to bottom as a transcript (the terminal) calls only ``finish``: the
replies, then the parent with the verdict."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, Protocol

from bot.diagnosis.model import Diagnosis, Subject
from bot.flows.serial import Serial
from bot.flows.steps_report import STEP_TITLES, StepReport
from bot.render.slack import Message, follow_ups_message, parent_message, step_message
from bot.sources.protocols import SourceCall


class ThreadSink(Protocol):
    async def post_parent(self, msg: Message) -> str: ...

    async def post_reply(self, msg: Message, key: str) -> str:
        """Post in the thread; ``key`` names the reply stably ("step:logs"), so a sink that
        remembers what it posted never posts the same reply twice."""
        ...

    async def update_parent(self, msg: Message) -> None: ...


class ThreadObserver:
    """An Observer that narrates the diagnosis into a thread."""

    HOLD_S = 0.25

    def __init__(self, sink: ThreadSink, subject: Subject, *, incident_id: str | None = None,
                 incident_url: str | None = None, requested_by: str | None = None) -> None:
        self.sink = sink
        self.subject = subject
        self.incident_id = incident_id
        self.incident_url = incident_url
        self.requested_by = requested_by
        self._index = 0
        # replies go out in order, off the diagnosis's path; finish() waits for them. They are
        # held for at most HOLD_S after the first step's: a diagnosis whose sources answered
        # at once shows its verdict first, a slow one its steps as they come
        self._posts = Serial("thread-replies", held=True)
        self._hold: asyncio.TimerHandle | None = None
        self._verdict_shown = False
        self._parent_posted: asyncio.Future[str] | None = None

    def begin(self) -> asyncio.Future[str]:
        """Post the parent ("running") in the background and return its ts to come: the
        diagnosis need not wait a Slack round trip for it. Replies and the verdict wait for
        it; if it fails, they raise its error."""
        if self._parent_posted is None:
            self._parent_posted = asyncio.ensure_future(self.sink.post_parent(self._parent("running")))
        return self._parent_posted

    async def start(self) -> str:
        """Post the parent and wait for it."""
        return await self.begin()

    async def _posted(self) -> None:
        if self._parent_posted is not None:
            await asyncio.shield(self._parent_posted)

    async def verdict(self, diagnosis: Diagnosis) -> None:
        """The parent with the verdict now, not waiting for the replies still on their way."""
        try:
            await self._posted()
            await self.sink.update_parent(self._parent("done", diagnosis))
            self._verdict_shown = True
        finally:
            self._posts.release()

    async def finish(self, diagnosis: Diagnosis) -> None:
        """Every reply posted (raises if one could not be), then the parent with the
        verdict, unless ``verdict`` showed it already."""
        await self.drain()
        if not self._verdict_shown:
            await self._posted()
            await self.sink.update_parent(self._parent("done", diagnosis))

    async def fail(self) -> None:
        try:
            await self.drain()
        finally:
            if await self._parent_ok():  # a parent that could not be posted has nothing to update
                await self.sink.update_parent(self._parent("failed"))

    async def _parent_ok(self) -> bool:
        try:
            await self._posted()
        except Exception:
            return False
        return True

    async def drain(self) -> None:
        """Wait until every reply so far is posted (raises if one could not be)."""
        if self._hold is not None:
            self._hold.cancel()
        try:
            await self._posts.drain()
        except asyncio.CancelledError:
            self._posts.cancel()  # the job is being handed over: its next attempt posts the rest
            raise
        await self._posts.close()

    def _parent(self, status: str, diagnosis: Diagnosis | None = None) -> Message:
        return parent_message(self.subject, status, diagnosis, incident_id=self.incident_id,
                              incident_url=self.incident_url, requested_by=self.requested_by)

    async def step_started(self, name: str, title: str) -> None:
        return None

    async def step_finished(self, report: StepReport) -> None:
        if self._hold is None:
            self._hold = asyncio.get_running_loop().call_later(self.HOLD_S, self._posts.release)
        self._index += 1
        msg = step_message(report, self._index, report.of or len(STEP_TITLES), self.incident_url)
        self._posts.submit(lambda: self._reply(msg, f"step:{report.name}"))
        if report.verdict is not None and report.verdict.follow_ups:
            fmsg = follow_ups_message(report.verdict.follow_ups, report.verdict.corrections, self.incident_url)
            self._posts.submit(lambda: self._reply(fmsg, "follow-ups"))

    async def _reply(self, msg: Message, key: str) -> str:
        await self._posted()  # a reply goes under the parent: never before it
        return await self.sink.post_reply(msg, key=key)

    async def source_call(self, step: str, call: SourceCall, items: Sequence[Any], error: str | None) -> None:
        return None
