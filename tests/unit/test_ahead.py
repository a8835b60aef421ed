"""``Ahead``: a billing read asked before its step's turn is shared only with a step that
asks the very same thing, and whatever nobody took is cancelled at the end."""

from __future__ import annotations

import asyncio
from typing import Any

from bot.flows.diagnosis.ahead import Ahead
from bot.sources.protocols import Fetched, SourceCall


class Reader:
    def __init__(self) -> None:
        self.asked: list[tuple[str, Any]] = []
        self.cancelled = 0
        self.slow_started = asyncio.Event()

    async def app_instances(self, ids: list[str]) -> Fetched[str]:
        self.asked.append(("app_instances", ids))
        return Fetched(list(ids), SourceCall(source="billing", kind="sql", request="app_instances"))

    async def slow(self, ids: list[str]) -> Fetched[str]:
        self.slow_started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        raise AssertionError("unreachable")

    async def odd(self, arg: Any) -> Fetched[str]:
        return Fetched([], SourceCall(source="billing", kind="sql", request="odd"))


async def test_a_read_is_taken_once_by_the_same_question_only() -> None:
    reader, ahead = Reader(), Ahead(eager=True)
    started = ahead.start(reader.app_instances, ["ai-1", "ai-2"])
    assert ahead.start(reader.app_instances, ["ai-1", "ai-2"]) is started  # asked once
    assert ahead.take(reader.app_instances, (["ai-1"],), {}) is None  # other ids: read anew
    assert ahead.take(reader.app_instances, (["ai-1", "ai-2"],), {}) is started
    assert ahead.take(reader.app_instances, (["ai-1", "ai-2"],), {}) is None  # handed over once
    assert (await started).items == ["ai-1", "ai-2"] and len(reader.asked) == 1


async def test_what_nobody_took_is_cancelled_and_unhashable_arguments_are_never_shared() -> None:
    reader, ahead = Reader(), Ahead(eager=True)
    ahead.start(reader.slow, ["ai-1"])
    odd = ahead.start(reader.odd, bytearray(b"unhashable"))
    assert ahead.start(reader.odd, bytearray(b"unhashable")) is not odd
    assert ahead.take(reader.odd, (bytearray(b"unhashable"),), {}) is None
    await reader.slow_started.wait()
    await ahead.aclose()
    assert reader.cancelled == 1 and odd.done()


async def test_nothing_is_launched_in_the_runbook_order() -> None:
    ahead, ran = Ahead(eager=False), []

    async def driver() -> None:
        ran.append(True)

    ahead.launch(driver)
    await ahead.aclose()
    assert ran == []
