"""The correct-but-tricky cases that are planted (docs/scenario.md, "Correct cases"): a rate
card change and half-even ties before the rows are planned, duplicates and credits after."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal

from bot.scenario.draft import Draft, Inst, floor_hour
from bot.scenario.prices import RateChange, matching_card, tie_quantity
from bot.scenario.rows import duplicate, free_rows, pick_run
from bot.scenario.spec import EXPONENTS, HOUR, Plant, ScenarioError


def target(draft: Draft, plant: Plant, ok: Callable[[Inst], bool]) -> Inst:
    """The plant's instance if it names one (and it suits), else the first that suits."""
    if plant.instance is not None:
        inst = draft.by_id.get(plant.instance)
        if inst is None:
            raise ScenarioError(f"{plant.kind}: no instance {plant.instance}")
        if not ok(inst):
            raise ScenarioError(f"{plant.kind}: {plant.instance} is not suitable")
        return inst
    cands = [i for i in draft.insts if ok(i)]
    if not cands:
        raise ScenarioError(f"{plant.kind}: no suitable instance in the layout")
    return cands[0]


def plan_rate_change(draft: Draft) -> tuple[RateChange | None, Plant | None]:
    """Where the ``rate_card_change`` plant splits a card: its worker's middle due hour."""
    plants = [p for p in draft.spec.correct_cases if p.kind == "rate_card_change"]
    if not plants:
        return None, None
    if len(plants) > 1:
        raise ScenarioError("one rate_card_change per scenario")
    plant = plants[0]
    inst = target(draft, plant, lambda i: len(draft.due_hours(i)) >= 4)
    hours = draft.due_hours(inst)
    worker = inst.components[1]
    t = hours[len(hours) // 2]
    return (inst.currency, worker.resource_class, inst.correct_source(worker), t), Plant(
        plant.kind, inst.app_instance_id
    )


def plant_tie(draft: Draft) -> None:
    """Move the start of each ``half_even_tie`` instance so its worker's first hour is a tie."""
    for plant in draft.spec.correct_cases:
        if plant.kind != "half_even_tie":
            continue

        explicit = plant.instance is not None

        def ok(i: Inst, explicit: bool = explicit) -> bool:
            single = i.call is not None and len(i.call.members) == 1
            long_enough = len(draft.due_hours(i)) >= 3
            return single and long_enough and (explicit or EXPONENTS[i.currency] == 2)

        inst = target(draft, plant, ok)
        worker = inst.components[1]
        top = floor_hour(inst.started_at)
        card = matching_card(
            draft, inst.currency, worker.resource_class, inst.correct_source(worker),
            False, inst.spec.control_plane_scope, top,
        )
        q = tie_quantity(card.unit_price_micros, EXPONENTS[inst.currency])
        if q is None:
            raise ScenarioError(f"half_even_tie: no tie quantity for {card.rate_card_id}")
        us = int((Decimal(3600) - q) * 1_000_000)
        inst.started_at = top + timedelta(microseconds=us)
        assert inst.call is not None
        inst.call.requested_at = inst.started_at - inst.start_delay
        if inst.stopped_at is not None and inst.stopped_at <= inst.started_at + 3 * HOUR:
            raise ScenarioError("half_even_tie: the instance must run at least 3 hours")
        draft.plant_rows.append((Plant(plant.kind, inst.app_instance_id), [], (card.rate_card_id,)))


def plant_rows_after(draft: Draft) -> None:
    """The plants on planned rows: a reversed duplicate, a refund, a promo credit."""
    kinds = {"duplicate_reversed", "refund_credit", "promo_credit"}
    for plant in draft.spec.correct_cases:
        if plant.kind not in kinds:
            continue
        inst = target(draft, plant, lambda i: len(free_rows(draft, i, i.components[1])) >= 2)
        run = pick_run(draft, inst, inst.components[1], 1, full=False)
        if run is None:
            raise ScenarioError(f"{plant.kind}: no free row on {inst.app_instance_id}")
        r = run[0]
        r.reserved = True
        if plant.kind == "duplicate_reversed":
            d = duplicate(draft, r)
            d.reversed = True
            draft.plant_rows.append((Plant(plant.kind, inst.app_instance_id), [r, d], ()))
        else:
            r.credits.append("refund" if plant.kind == "refund_credit" else "promo_credit")
            draft.plant_rows.append((Plant(plant.kind, inst.app_instance_id), [r], ()))
