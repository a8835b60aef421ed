"""The reads the evidence calls for, started as soon as any source names them.

The runbook reads Loki, then Tempo with the trace ids of those logs, then Loki again by
app instance: three round trips one after another. But the billing rows that carry the
correlation id answer in milliseconds and already name most of what the later steps
wait for (``usage_records.trace_id``, ``app_instance_id``). So each trace and each app
instance's logs are asked as soon as any source names them: the billing rows first, then
the logs and the spans as they arrive (``saw``). Each is asked once, within the caps.

The steps that own these reads (``trace``, ``pivot``) still start them in their turn
(``start_traces``, ``start_instances``: only what nobody asked yet) and collect them
(``Context.settle``), so the thread, the evidence and the document are what the
runbook's order gives. ``eager=False`` (``SourceSet.sequential``): nothing starts before
its step's turn. Whatever is left when the run ends is cancelled (``aclose``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from bot.diagnosis import core
from bot.diagnosis.model import LogEvent, Span, Window
from bot.sources import logql
from bot.sources.protocols import Fetched, LogSource, TraceSource

MAX_TRACES = 20  # traces read per diagnosis
MAX_PIVOT_INSTANCES = 50  # app instances whose logs are read one by one
LOKI_CONCURRENCY = 8  # Loki requests of one diagnosis at once


class Leads:
    """Per trace id and per app instance, the one read of it (a task)."""

    def __init__(self, logs: LogSource | None, traces: TraceSource | None, window: Window, *, eager: bool) -> None:
        self._logs, self._tempo, self._window = logs, traces, window
        self.eager = eager
        self.loki_slots = asyncio.Semaphore(LOKI_CONCURRENCY)
        self.traces: dict[str, asyncio.Task[Fetched[Span]]] = {}
        self.instances: dict[str, asyncio.Task[Fetched[LogEvent]]] = {}

    def saw(self, named: core.Named) -> None:
        """Evidence came back: start the reads it names that nobody asked yet."""
        if not self.eager:
            return
        self.start_traces(sorted(named.traces))
        self.start_instances(sorted(named.instances))

    def stop(self) -> None:
        """The step that collects is running: from now on only it starts reads."""
        self.eager = False

    def start_traces(self, trace_ids: Iterable[str]) -> None:
        if self._tempo is None:
            return
        for tid in trace_ids:
            if tid not in self.traces and len(self.traces) < MAX_TRACES:
                self.traces[tid] = asyncio.create_task(self._trace(self._tempo, tid))

    def start_instances(self, instance_ids: Iterable[str]) -> None:
        if self._logs is None:
            return
        for iid in instance_ids:
            if iid not in self.instances and len(self.instances) < MAX_PIVOT_INSTANCES:
                self.instances[iid] = asyncio.create_task(self._instance_logs(self._logs, iid))

    async def _trace(self, tempo: TraceSource, tid: str) -> Fetched[Span]:
        got = await tempo.get_trace(tid, self._window)
        if self.eager:
            self.saw(core.named(spans=got.items))  # the spans name app instances
        return got

    async def _instance_logs(self, src: LogSource, iid: str) -> Fetched[LogEvent]:
        async with self.loki_slots:
            return await src.query(logql.by_app_instance_id(iid), self._window)

    async def aclose(self) -> None:
        """Cancel what is still running (a read nobody needed, a run that timed out) and
        wait until it has stopped."""
        tasks = [*self.traces.values(), *self.instances.values()]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
