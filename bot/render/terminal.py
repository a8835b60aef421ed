"""The diagnosis for a terminal: steps as they run, then findings and impact as tables."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any, TextIO

from bot.diagnosis.model import Diagnosis
from bot.diagnosis.money import format_minor
from bot.flows.steps_report import StepReport
from bot.sources.protocols import SourceCall

MARK = {"ok": "ok", "partial": "PARTIAL", "failed": "FAILED", "skipped": "skipped"}


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], max_width: int = 60) -> str:
    cells = [[str(c) if len(str(c)) <= max_width else str(c)[: max_width - 1] + "…" for c in r] for r in rows]
    widths = [len(h) for h in headers]
    for r in cells:
        for i, c in enumerate(r):
            widths[i] = max(widths[i], len(c))
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    sep = "  ".join("-" * w for w in widths)
    body = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join([line, sep, *body])


class TerminalProgress:
    """An Observer that prints each step as it starts and ends (to stderr by default)."""

    def __init__(self, out: TextIO | None = None) -> None:
        self.out = out or sys.stderr
        self._n = 0

    async def step_started(self, name: str, title: str) -> None:
        self._n += 1
        print(f"[{self._n}] {title} …", file=self.out, flush=True)

    async def step_finished(self, report: StepReport) -> None:
        print(f"    {MARK.get(report.state, report.state)}", file=self.out, flush=True)
        for line in report.lines[:8]:
            print(f"    · {line}", file=self.out, flush=True)
        if len(report.lines) > 8:
            print(f"    · … {len(report.lines) - 8} more", file=self.out, flush=True)

    async def source_call(self, step: str, call: SourceCall, items: Sequence[Any], error: str | None) -> None:
        return None


def render(d: Diagnosis) -> str:
    out: list[str] = []
    out.append(f"Diagnosis of {d.subject.label()}")
    out.append(f"window {d.window.start:%Y-%m-%d %H:%M} to {d.window.end:%Y-%m-%d %H:%M} UTC")
    out.append(f"sources: loki {d.sources.loki}, tempo {d.sources.tempo}, billing {d.sources.billing}"
               + ("" if d.complete else "   (INCOMPLETE: findings may be partial)"))
    out.append(f"trace ids: {', '.join(d.trace_ids) or 'none'}")
    out.append(f"app instances: {', '.join(d.identifiers.app_instance_ids) or 'none'}")
    st = d.stages
    out.append(f"stages: lifecycle {st.app_lifecycle} · outbox {st.outbox_publish} · "
               f"billing worker {st.billing_worker} · payment {st.payment_webhook}")
    out.append("")
    if d.findings:
        out.append(f"Findings ({len(d.findings)}):")
        out.append(table(
            ["check", "app instance", "owner", "impact", "summary"],
            [[f.check, f.app_instance_id or "-", f.owning_layer,
              format_minor(f.impact_minor, f.currency) if f.impact_minor else "0", f.summary] for f in d.findings],
            max_width=90,
        ))
        out.append("")
        out.append("Customer impact:")
        out.append(table(
            ["org", "project", "app instance", "overcharged", "undercharged"],
            [[r.org_id, r.project_id, r.app_instance_id or "-", format_minor(r.overcharged_minor, r.currency),
              format_minor(r.undercharged_minor, r.currency)] for r in d.impact],
        ))
    else:
        out.append("No findings.")
    out.append("")
    out.append(f"scope: {d.scope}    freeze recommended: {'YES' if d.freeze_recommended else 'no'}")
    if d.searched and not d.findings:
        out.append("searched:")
        out.extend(f"  - {s}" for s in d.searched)
    if d.notes:
        out.append("notes:")
        out.extend(f"  - {n}" for n in d.notes)
    return "\n".join(out)
