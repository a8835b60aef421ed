"""From findings to follow-ups: one per owning layer, saying what it must fix and the
evidence for it. Pure."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from bot.diagnosis.model import CheckName, Finding, FollowUp, OwningLayer

MAX_IDS = 50

FIX: dict[OwningLayer, str] = {
    "metering_emitter": (
        "Emit one metering event per component per hour run, with the component's control-plane flag "
        "(control_plane_component) taken from app_instance_components, and make sure the outbox relay publishes "
        "every event it stores."),
    "attribution_mapping": (
        "Derive usage_source (managed: app_runtime; on_allocation: allocation for non-control-plane components, "
        "with the instance's allocation_id) and the anchor (org, project, app instance, operating mode, "
        "control-plane scope, runtime backend) from the app instance's metadata, not from the event's sender."),
    "billing_worker": (
        "Record every published metering event exactly once (idempotent on source_event_id and on "
        "app instance, component and hour) and post exactly one usage debit per usage row at the rate-card price."),
    "ui_export": (
        "Make the listing and export paths read usage_source and the attribution fields as stored; the rows "
        "themselves are right."),
}


def follow_ups(findings: Iterable[Finding]) -> list[FollowUp]:
    by_layer: dict[OwningLayer, list[Finding]] = defaultdict(list)
    for f in findings:
        by_layer[f.owning_layer].append(f)
    out: list[FollowUp] = []
    layers: tuple[OwningLayer, ...] = ("metering_emitter", "attribution_mapping", "billing_worker", "ui_export")
    for layer in layers:
        fs = by_layer.get(layer)
        if not fs:
            continue
        checks: list[CheckName] = []
        impact: dict[str, int] = defaultdict(int)
        for f in fs:
            if f.check not in checks:
                checks.append(f.check)
            if f.currency:
                impact[f.currency] += f.impact_minor
        out.append(FollowUp(
            owning_layer=layer, fix=FIX[layer], checks=checks, findings=len(fs),
            app_instance_ids=sorted({f.app_instance_id for f in fs if f.app_instance_id}),
            usage_record_ids=sorted({u for f in fs for u in f.usage_record_ids})[:MAX_IDS],
            ledger_entry_ids=sorted({le for f in fs for le in f.ledger_entry_ids})[:MAX_IDS],
            impact=dict(impact),
        ))
    return out
