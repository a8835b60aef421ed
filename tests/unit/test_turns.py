"""``bot.store.intake.Turns``: the webhook's parsing, one body at a time, with a pass of
the event loop between two bodies (so that the intake's replies are not kept waiting
behind a whole storm of parsing)."""

from __future__ import annotations

import asyncio

import pytest

from bot.store.intake import Turns


async def test_turns_run_in_arrival_order_with_the_loop_in_between() -> None:
    turns, seen = Turns(min_chars=0), []
    loop = asyncio.get_running_loop()

    def parse(name: str) -> str:
        seen.append(name)
        loop.call_soon(seen.append, f"io after {name}")  # what a reply arriving meanwhile would run
        return name.upper()

    got = await asyncio.gather(*(turns.run(parse, n) for n in ("a", "b", "c")))
    assert got == ["A", "B", "C"]
    # without turns all three parse in one pass of the loop, and the replies wait for them
    assert seen == ["a", "io after a", "b", "io after b", "c", "io after c"]


async def test_a_failing_turn_passes_its_error_on_and_the_next_turn_runs() -> None:
    turns = Turns(min_chars=0)

    def parse(text: str) -> int:
        return int(text)

    bad, good = await asyncio.gather(turns.run(parse, "x"), turns.run(parse, "7"), return_exceptions=True)
    assert isinstance(bad, ValueError) and good == 7


async def test_a_caller_cancelled_while_waiting_for_its_turn_leaves_the_others_theirs() -> None:
    turns, seen, a_parsed = Turns(min_chars=0), [], asyncio.Event()

    def parse(name: str) -> None:
        seen.append(name)
        a_parsed.set()

    first = asyncio.create_task(turns.run(parse, "a"))
    second = asyncio.create_task(turns.run(parse, "b"))
    third = asyncio.create_task(turns.run(parse, "c"))
    await a_parsed.wait()  # a has had its turn and still holds it; b and c wait
    second.cancel()
    await first
    await third
    with pytest.raises(asyncio.CancelledError):
        await second
    assert seen == ["a", "c"]


async def test_small_bodies_are_parsed_at_once() -> None:
    turns, seen = Turns(min_chars=4), []
    loop = asyncio.get_running_loop()

    def parse(text: str) -> None:
        seen.append(text)
        loop.call_soon(seen.append, f"io after {text}")

    await asyncio.gather(*(turns.run(parse, t) for t in ("big1", "s", "big2", "t")))
    # big1 holds the turn over a pass of the loop; s and t (short) need no turn
    assert seen == ["big1", "s", "t", "io after big1", "io after s", "io after t", "big2", "io after big2"]
