"""A Slack diagnosis starts while its parent message is still being posted: the work runs
beside the post (``slack_diagnosis.beside``), the replies and the verdict wait for the
parent (``ThreadObserver.begin``), and a parent that cannot be posted stops the work."""

from __future__ import annotations

import asyncio

import pytest

from bot.diagnosis.model import Subject
from bot.flows.slack_diagnosis import beside
from bot.flows.steps_report import StepReport
from bot.flows.thread import ThreadObserver
from bot.render.slack import Message


class GatedSink:
    """A thread sink whose parent post waits for ``gate`` (or raises ``refuse``)."""

    def __init__(self, refuse: Exception | None = None) -> None:
        self.gate = asyncio.Event()
        self.refuse = refuse
        self.calls: list[str] = []

    async def post_parent(self, msg: Message) -> str:
        self.calls.append("parent asked")
        await self.gate.wait()
        if self.refuse is not None:
            raise self.refuse
        self.calls.append("parent posted")
        return "1700000000.000100"

    async def post_reply(self, msg: Message, key: str) -> str:
        self.calls.append(f"reply {key}")
        return "1700000000.000200"

    async def update_parent(self, msg: Message) -> None:
        self.calls.append("update")


SUBJECT = Subject(correlation_id="corr-1")


async def test_the_work_runs_while_the_parent_is_posted() -> None:
    sink = GatedSink()
    thread = ThreadObserver(sink, SUBJECT)
    parent = thread.begin()
    ran = asyncio.Event()

    async def work() -> str:
        ran.set()
        return "diagnosed"

    result = asyncio.ensure_future(beside(parent, work()))
    await ran.wait()  # the parent is still held: the work did not wait for it
    assert sink.calls == ["parent asked"] and not result.done()
    sink.gate.set()
    assert await result == "diagnosed" and await parent == "1700000000.000100"


async def test_the_replies_and_the_verdict_wait_for_the_parent() -> None:
    sink = GatedSink()
    thread = ThreadObserver(sink, SUBJECT)
    thread.begin()
    await thread.step_finished(StepReport(name="logs", title="Logs by correlation id", of=6))
    verdict = asyncio.ensure_future(thread.verdict(diagnosis=None))  # type: ignore[arg-type]
    await asyncio.sleep(0)  # let the verdict and the released replies run up to the parent
    assert sink.calls == ["parent asked"] and not verdict.done()
    sink.gate.set()
    await verdict
    await thread.drain()
    assert sink.calls[:3] == ["parent asked", "parent posted", "update"] and "reply step:logs" in sink.calls


async def test_a_parent_that_cannot_be_posted_stops_the_work_with_its_error() -> None:
    sink = GatedSink(refuse=RuntimeError("channel_not_found"))
    thread = ThreadObserver(sink, SUBJECT)
    parent = thread.begin()
    started, cancelled = asyncio.Event(), asyncio.Event()

    async def work() -> str:
        started.set()
        try:
            await asyncio.Event().wait()  # a diagnosis still reading its sources
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return "never"

    result = asyncio.ensure_future(beside(parent, work()))
    await started.wait()
    sink.gate.set()
    with pytest.raises(RuntimeError, match="channel_not_found"):
        await result
    assert cancelled.is_set()
    await thread.fail()  # nothing to mark failed: no parent was posted
    assert "update" not in sink.calls


async def test_a_failing_work_raises_its_own_error_and_the_job_cancelled_cancels_the_work() -> None:
    sink = GatedSink()
    thread = ThreadObserver(sink, SUBJECT)
    parent = thread.begin()

    async def broken() -> str:
        raise ValueError("billing said no")

    with pytest.raises(ValueError, match="billing said no"):
        await beside(parent, broken())

    cancelled = asyncio.Event()

    async def slow() -> str:
        try:
            await asyncio.Event().wait()
        finally:
            cancelled.set()
        return "never"

    job = asyncio.ensure_future(beside(parent, slow()))
    await asyncio.sleep(0)
    job.cancel()
    with pytest.raises(asyncio.CancelledError):
        await job
    await cancelled.wait()
    sink.gate.set()
    await thread.fail()  # the parent went out: it is marked failed
    assert sink.calls[-1] == "update"
