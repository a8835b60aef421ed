"""The diagnosis document from what the steps found (pure)."""

from __future__ import annotations

from bot.diagnosis import core
from bot.diagnosis.model import Diagnosis, Sources, WindowOut
from bot.flows.diagnosis.context import Context
from bot.flows.diagnosis.state import RunState


def assemble(ctx: Context, state: RunState) -> Diagnosis:
    logs, rows, instances = state.logs.events, state.rows, state.pivot.instances
    findings, spans = state.reconciliation.findings, state.trace.spans
    ids, trace_ids = (state.logs.named | rows.named | core.named(
        spans=spans or [],
        extra_instances=[i.app_instance_id for i in instances] + [a for a in (ctx.subject.app_instance_id,) if a],
    )).identifiers()
    ids.org_ids = sorted(set(ids.org_ids) | {i.org_id for i in instances})
    ids.project_ids = sorted(set(ids.project_ids) | {i.project_id for i in instances})
    if not findings and not logs and not rows.usage and not rows.ledger and not instances:
        ctx.notes.append("no evidence found for the subject in any source searched")
    return Diagnosis(
        subject=ctx.subject,
        window=WindowOut(start=ctx.window.start, end=ctx.window.end),
        trace_ids=trace_ids,
        identifiers=ids,
        scope=core.scope_of(findings),
        freeze_recommended=core.freeze_recommended(findings),
        stages=core.stages(spans, logs),
        findings=findings,
        impact=core.impact_of(findings),
        sources=Sources(loki=ctx.health["loki"], tempo=ctx.health["tempo"], billing=ctx.health["billing"],
                        export=state.export.state),
        complete=all(v == "ok" for v in ctx.health.values()) and state.export.state in ("ok", "not_given"),
        searched=ctx.searched,
        notes=ctx.notes,
        follow_ups=state.reconciliation.follow_ups,
        corrections=state.reconciliation.corrections,
        export=state.export.outcome.read if state.export.outcome is not None else None,
    )
