"""``Serial``: work in submission order, off the caller's path; ``held`` waits for ``drain``."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from bot.flows.serial import Serial


async def test_held_work_waits_for_drain_then_runs_in_order() -> None:
    done: list[int] = []
    q = Serial("t", held=True)

    def work(i: int) -> Callable[[], Awaitable[None]]:
        async def run() -> None:
            done.append(i)
        return run

    for i in range(3):
        q.submit(work(i))
    await asyncio.sleep(0.01)
    assert done == []  # held: nothing ran yet
    await q.drain()
    q.submit(work(3))  # released: runs without another drain
    await asyncio.sleep(0.01)
    assert done == [0, 1, 2, 3]
    await q.close()


async def test_a_failure_stops_the_rest_and_drain_raises_it() -> None:
    done: list[str] = []
    q = Serial("t")

    async def ok() -> None:
        done.append("ok")

    async def bad() -> None:
        raise RuntimeError("refused")

    q.submit(ok)
    q.submit(bad)
    q.submit(ok)
    with pytest.raises(RuntimeError, match="refused"):
        await q.drain()
    assert done == ["ok"]
