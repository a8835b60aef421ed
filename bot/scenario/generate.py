"""Deterministic platforms with known, injected billing drift: ``build_platform`` runs the
steps below over one draft, in an order that is part of the output (every random draw comes
from the seed). What each step makes, every flavour and every correct case: docs/scenario.md."""

from __future__ import annotations

from datetime import UTC, datetime

from bot.diagnosis.model import AppInstance
from bot.scenario.answer_key import correct_cases, expectations
from bot.scenario.demo import DEMO_SEED, demo_spec
from bot.scenario.draft import Draft
from bot.scenario.emission import emit_calls, emit_rows
from bot.scenario.injection import inject_all
from bot.scenario.layout import lay_out, set_times
from bot.scenario.plants import plan_rate_change, plant_rows_after, plant_tie
from bot.scenario.platform import Expected, LifecycleCall, Platform
from bot.scenario.prices import price_book
from bot.scenario.rows import plan_rows
from bot.scenario.spec import ScenarioSpec

# demo_spec: bot/commands/demo.py takes it from here, with build_platform
__all__ = ["build_platform", "demo_platform", "demo_spec"]


def build_platform(spec: ScenarioSpec, *, now: datetime, seed: int) -> Platform:
    """The platform for ``spec`` as of ``now``; everything random comes from ``seed``."""
    draft = Draft(spec, now, seed)
    lay_out(draft)
    set_times(draft)
    change, change_plant = plan_rate_change(draft)
    changed = price_book(draft, change)
    plant_tie(draft)
    plan_rows(draft)
    plant_rows_after(draft)
    inject_all(draft)
    emit_calls(draft)
    emit_rows(draft)
    expected = expectations(draft)
    correct_cases(draft, changed, change_plant)
    return _platform(draft, expected)


def demo_platform(now: datetime | None = None, seed: int = DEMO_SEED) -> Platform:
    """``build_platform(demo_spec())`` as of ``now`` (default: the current time)."""
    return build_platform(demo_spec(), now=now or datetime.now(UTC), seed=seed)


def _platform(draft: Draft, expected: list[Expected]) -> Platform:
    disputed = None
    if draft.spec.disputed_call is not None:
        disputed = next(
            c.correlation_id for c in draft.calls if c.label == draft.spec.disputed_call
        )
    draft.logs.sort(key=lambda e: (e.ts, e.service, e.event))
    draft.spans.sort(key=lambda s: (s.trace_id, s.start, s.span_id))
    draft.ledger.sort(key=lambda e: (e.posted_at, e.ledger_entry_id))
    return Platform(
        now=draft.now,
        seed=draft.seed,
        accounts=draft.accounts,
        rate_cards=draft.cards,
        instances=_instances(draft),
        components=[c for i in draft.insts for c in i.components],
        usage=sorted(draft.usage, key=lambda u: u.usage_record_id),
        ledger=draft.ledger,
        logs=draft.logs,
        spans=draft.spans,
        calls=_calls(draft),
        expected=expected,
        correct_cases=draft.correct,
        disputed_correlation_id=disputed,
        created_at={
            i.app_instance_id: (i.call.requested_at if i.call else i.started_at)
            for i in draft.insts
        },
    )


def _instances(draft: Draft) -> list[AppInstance]:
    return [
        AppInstance(
            app_instance_id=i.app_instance_id,
            org_id=i.org_id,
            project_id=i.project_id,
            app_kind=i.app_kind,
            operating_mode=i.mode,
            control_plane_scope=i.spec.control_plane_scope,
            runtime_backend=i.spec.runtime_backend,
            allocation_id=i.allocation_id,
            status="running" if i.stopped_at is None else "stopped",
            started_at=i.started_at,
            stopped_at=i.stopped_at,
        )
        for i in draft.insts
    ]


def _calls(draft: Draft) -> list[LifecycleCall]:
    """The start calls, then the stop calls."""
    return [
        LifecycleCall(
            correlation_id=c.correlation_id,
            trace_id=c.trace_id,
            root_span_id=c.root_span_id,
            action="start" if any(c is x for x in draft.calls) else "stop",
            org_id=c.org_id,
            project_id=c.project_id,
            app_instance_ids=tuple(i.app_instance_id for i in c.members),
            requested_at=c.requested_at,
            funded=c.funded,
            label=c.label,
        )
        for c in [*draft.calls, *draft.stop_calls]
    ]
