"""Work that must happen in order but need not hold up the caller: posting a thread's
replies, writing evidence. ``submit`` queues it; one background task runs the queue in
order; ``drain`` waits for all of it and raises the first failure. A queue made
``held`` only collects until ``release`` (or ``drain``): work that should not compete
with the caller's own for the event loop (evidence, until the verdict is out)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable


class Serial:
    def __init__(self, name: str, *, held: bool = False) -> None:
        self.name = name
        self._queue: asyncio.Queue[Callable[[], Awaitable[object]] | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._error: BaseException | None = None
        self._held = held

    def submit(self, work: Callable[[], Awaitable[object]]) -> None:
        if self._error is not None:
            return  # the queue already failed: drain() reports it
        self._queue.put_nowait(work)
        if not self._held:
            self._start()

    def release(self) -> None:
        """Run what was held, and from now on what is submitted."""
        self._held = False
        if not self._queue.empty():
            self._start()

    def _start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=self.name)

    async def _run(self) -> None:
        while True:
            work = await self._queue.get()
            try:
                if work is None:
                    return
                if self._error is None:
                    await work()
            except Exception as exc:
                self._error = exc
            finally:
                self._queue.task_done()

    async def drain(self) -> None:
        """Wait until everything submitted has run; raise the first error, if any."""
        self.release()
        if self._task is not None:
            await self._queue.join()
        if self._error is not None:
            raise self._error

    def cancel(self) -> None:
        """Stop at once (the owner is being cancelled): what was not run is dropped."""
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def close(self) -> None:
        if self._task is not None:
            self._queue.put_nowait(None)
            await self._task
            self._task = None
