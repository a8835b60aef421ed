"""An Observer that keeps everything a diagnosis saw in the store: one evidence record
per source call (what was asked, the window, when, a capped copy of what came back
with its count and digest) and timeline events for steps and findings."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import fields, is_dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel

from bot.flows.serial import Serial
from bot.flows.steps_report import StepReport
from bot.sources.protocols import SourceCall
from bot.store.store import Phase, Store

log = logging.getLogger(__name__)
THREAD_ROWS = 200  # bigger row sets are converted (and digested) off the event loop


def _rows(items: Sequence[BaseModel]) -> list[dict[str, Any]]:
    return [i.model_dump(mode="json") for i in items]


def as_row(item: Any) -> dict[str, Any]:
    """A JSON-able dict of an evidence item (dataclass with slots, or mapping)."""
    if is_dataclass(item) and not isinstance(item, type):
        d = {f.name: getattr(item, f.name) for f in fields(item)}
        line = d.pop("line", None)
        if isinstance(line, dict):
            d = {**{k: v for k, v in d.items() if k != "labels"}, **line}
        elif "attributes" in d:
            d["attributes"] = dict(d["attributes"])
        return d
    if isinstance(item, dict):
        return item
    return {"value": str(item)}


class Recorder:
    """Writes evidence and timeline for one run. Never fails the diagnosis: a store
    error is logged and remembered (``failures``)."""

    def __init__(self, store: Store, incident_id: str, run_id: int, *, correlation_id: str | None,
                 row_cap: int, actor: str = "recon", phase: Phase = "before") -> None:
        self.store = store
        self.incident_id = incident_id
        self.run_id = run_id
        self.correlation_id = correlation_id
        self.row_cap = row_cap
        self.actor = actor
        self.phase = phase
        self.failures = 0
        self.evidence_count = 0
        self.timeline_count = 0
        self.trace_id: str | None = None
        # evidence is written off the diagnosis's path, in order, once the run is over
        # (flush(), after the verdict): converting and digesting every row read is CPU
        # work that would otherwise compete with the diagnosis's own for the event loop
        self._writes = Serial(f"evidence-{incident_id}-{run_id}", held=True)
        # timeline events are written as they come, in order, but the diagnosis does not
        # wait for each (the database stamps one as it writes it, a moment after the step)
        self._events = Serial(f"timeline-{incident_id}-{run_id}")

    def _timeline(self, type_: str, source: str, description: str, details: dict[str, Any],
                  trace_id: str | None = None) -> None:
        tid = trace_id or self.trace_id  # as known now, not when written
        self._events.submit(lambda: self._write_event(type_, source, description, details, tid))

    async def _write_event(self, type_: str, source: str, description: str, details: dict[str, Any],
                           trace_id: str | None) -> None:
        try:
            await self.store.add_timeline_event(
                incident_id=self.incident_id, run_id=self.run_id, type=type_, source=source,
                description=description, details=details, actor=self.actor,
                correlation_id=self.correlation_id, trace_id=trace_id,
            )
            self.timeline_count += 1
        except Exception:
            self.failures += 1
            log.exception("could not record a timeline event for %s", self.incident_id)

    async def step_started(self, name: str, title: str) -> None:
        self._timeline("step_started", "recon", title, {"step": name})

    async def step_finished(self, report: StepReport) -> None:
        if report.name == "trace" and not self.trace_id:
            for call in report.calls:
                tid = call.params.get("trace_id") if call.params else None
                if isinstance(tid, str):
                    self.trace_id = tid
                    break
        self._timeline("step_finished", "recon", f"{report.title}: {report.state}",
                       {"step": report.name, "state": report.state, "lines": report.lines[:50]})
        v = report.verdict
        if v is None:
            return
        for f in report.findings:
            self._timeline("finding", f.owning_layer, f.summary, f.model_dump(mode="json"))
        if report.findings:
            self._record_made("summary", "customer_impact", _rows(v.impact), "customer-visible impact by tenant, "
                              "project and app instance")
        for fu in v.follow_ups:
            self._timeline("follow_up", fu.owning_layer,
                           f"follow-up for {fu.owning_layer}: {', '.join(fu.checks)}", fu.model_dump(mode="json"))
        if v.corrections:
            self._record_made("proposal", "proposed_corrections", _rows(v.corrections),
                              "ledger entries proposed for the approved correction procedure (not applied)")
            self._timeline("corrections_proposed", "recon",
                           f"{len(v.corrections)} corrective ledger entries proposed (not applied)",
                           {"count": len(v.corrections)})

    async def source_call(self, step: str, call: SourceCall, items: Sequence[Any], error: str | None) -> None:
        if call.kind == "trace" and not self.trace_id and call.params.get("trace_id"):
            self.trace_id = str(call.params["trace_id"])
        self._writes.submit(lambda: self._write(step, call, list(items), error))

    async def _write(self, step: str, call: SourceCall, items: list[Any], error: str | None) -> None:
        try:
            if len(items) > THREAD_ROWS:
                rows = await asyncio.to_thread(lambda: [as_row(i) for i in items])
            else:
                rows = [as_row(i) for i in items]
            await self.store.add_evidence(
                incident_id=self.incident_id, run_id=self.run_id, step=step, phase=self.phase, call=call,
                rows=rows, row_cap=self.row_cap, error=error,
            )
            self.evidence_count += 1
        except Exception:
            self.failures += 1
            log.exception("could not record evidence for %s", self.incident_id)

    def _record_made(self, kind: str, request: str, rows: list[dict[str, Any]], what: str) -> None:
        """Evidence that recon derived (not read): the impact summary, proposed corrections."""
        call = SourceCall(source="recon", kind=kind, request=request, params={"what": what},
                          started_at=datetime.now(UTC), via="recon")
        self._writes.submit(lambda: self._write("reconciliation", call, list(rows), None))

    async def flush(self) -> None:
        """Write every timeline event and evidence record submitted so far, in order, and
        wait for them."""
        for queue in (self._events, self._writes):
            try:
                await queue.drain()
            except asyncio.CancelledError:
                self._events.cancel()
                self._writes.cancel()
                raise
            await queue.close()


class Fanout:
    """Several observers as one, in order."""

    def __init__(self, *observers: Any) -> None:
        self.observers = observers

    async def step_started(self, name: str, title: str) -> None:
        for o in self.observers:
            await o.step_started(name, title)

    async def step_finished(self, report: StepReport) -> None:
        for o in self.observers:
            await o.step_finished(report)

    async def source_call(self, step: str, call: SourceCall, items: Sequence[Any], error: str | None) -> None:
        for o in self.observers:
            await o.source_call(step, call, items, error)
