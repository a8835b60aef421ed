"""The billing reads of the pivot, the attribution and the reconciliation, asked before
their turn.

Those three steps read the database for the instances the evidence names: their
metadata, their rows in the window and the prices, then the rows' ledger entries. In the
runbook's order that is three dependent round trips after the last Loki or Tempo answer,
though the bot sat idle while it waited for those. But the billing rows that carry the
correlation id name the instances in the common case, long before the logs and spans have
answered. So
``bot.flows.diagnosis.prefetch`` reads for those instances at once, as the steps would,
while Loki and Tempo are still out (``Ahead.launch``).

Each read is kept under what it asked (the reader's method and its arguments). A step
asks through ``Context.billing`` and takes the read already under way when it asks the
very same thing (the same method, the same ids: the same answer, so the thread, the
evidence and the document are what the runbook's order gives), and reads anew when the
evidence turned out to name other instances. A read nobody took is cancelled when the
run ends. Nothing starts before its turn in the runbook's order (``eager=False``), for an
org (its instances are screened in the database), or for more instances than a diagnosis
reads in full."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine, Hashable
from typing import Any, ParamSpec, TypeVar

from bot.sources.protocols import Fetched

P = ParamSpec("P")
T = TypeVar("T")


def _frozen(v: Any) -> Hashable:
    if isinstance(v, list | tuple):
        return tuple(_frozen(x) for x in v)
    if isinstance(v, set | frozenset):
        return tuple(sorted(_frozen(x) for x in v))  # type: ignore[type-var]
    if isinstance(v, dict):
        return tuple(sorted((k, _frozen(x)) for k, x in v.items()))
    return v  # type: ignore[no-any-return]


def key_of(read: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Hashable | None:
    """What a read asks: the reader's method and its arguments (None: an argument that
    cannot be a key, so the read is never shared)."""
    key = (getattr(read, "__name__", repr(read)), _frozen(args), _frozen(kwargs))
    try:
        hash(key)
    except TypeError:
        return None
    return key


class Ahead:
    """The billing reads started before their step's turn, one task per distinct read."""

    def __init__(self, *, eager: bool) -> None:
        self.eager = eager
        self._reads: dict[Hashable, asyncio.Task[Any]] = {}
        self._driver: asyncio.Task[None] | None = None

    def start(self, read: Callable[P, Awaitable[Fetched[T]]], *args: P.args,
              **kwargs: P.kwargs) -> asyncio.Task[Fetched[T]]:
        """The read under way for exactly this (started now if nobody asked it yet)."""
        key = key_of(read, args, kwargs)
        task = self._reads.get(key) if key is not None else None
        if task is None:
            task = asyncio.ensure_future(read(*args, **kwargs))
            self._reads[key if key is not None else object()] = task  # unshared: still cancelled at the end
        return task

    def take(self, read: Callable[..., Any], args: tuple[Any, ...],
             kwargs: dict[str, Any]) -> asyncio.Task[Any] | None:
        """The read already under way for exactly this, handed to the step that asks (once)."""
        key = key_of(read, args, kwargs)
        return self._reads.pop(key, None) if key is not None else None

    def launch(self, driver: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Run ``driver`` (``bot.flows.diagnosis.prefetch``: the reads it starts are this
        object's) in the background, unless nothing may start before its turn."""
        if self.eager and self._driver is None:
            self._driver = asyncio.ensure_future(driver())

    async def aclose(self) -> None:
        """Cancel every read nobody took, and the prefetch itself, and wait until they stopped."""
        tasks = [*self._reads.values(), *([self._driver] if self._driver else [])]
        self._reads.clear()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
