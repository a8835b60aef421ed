"""The answer key: one ``Expected`` per injection (what a check must report) and one
``CorrectCase`` per planted or observed case (what no check may report)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from bot.diagnosis.model import CheckName, OwningLayer
from bot.scenario.draft import Draft, Inst, Row, rfc3339
from bot.scenario.platform import CorrectCase, Expected
from bot.scenario.prices import matching_card, price_correct, price_recorded
from bot.scenario.spec import EXPONENTS, OBSERVED, Plant, ScenarioError

_OWNER: dict[tuple[str, str], OwningLayer] = {
    ("missing_usage", "emitter"): "metering_emitter",
    ("missing_usage", "rejected"): "billing_worker",
}
_DEFAULT_OWNER: dict[CheckName, OwningLayer] = {
    "missing_usage": "metering_emitter",
    "wrong_source": "attribution_mapping",
    "wrong_anchor": "attribution_mapping",
    "ledger_mismatch": "billing_worker",
    "control_plane_drift": "metering_emitter",
    "duplicate_charge": "billing_worker",
}


def expectations(draft: Draft) -> list[Expected]:
    out: list[Expected] = []
    for inj, fl, run in draft.inj_rows:
        inst = run[0].inst
        assert inst.call is not None
        check = inj.check
        usage, ledger, impact = _ids_and_impact(draft, check, fl, run)
        comp = run[0].comp.component
        periods = tuple(r.period_start for r in run)
        out.append(
            Expected(
                check=check,
                app_instance_id=inst.app_instance_id,
                usage_record_ids=frozenset(usage),
                ledger_entry_ids=frozenset(ledger),
                owning_layer=_OWNER.get((check, fl), _DEFAULT_OWNER[check]),
                correlation_id=inst.call.correlation_id,
                impact_minor=impact,
                currency=inst.currency,
                note=_note(check, fl, inst, comp, periods, run),
                flavour=fl,
                org_id=inst.org_id,
                project_id=inst.project_id,
                component=comp,
                period_starts=periods,
            )
        )
    return out


def _ids_and_impact(draft: Draft, check: CheckName, fl: str, run: list[Row]) -> tuple[set[str], set[str], int]:
    """The usage and ledger ids a check must report for the injected run, and its impact."""
    usage: set[str] = set()
    ledger: set[str] = set()
    impact = 0
    if check == "missing_usage":
        impact = -sum(price_correct(draft, r) for r in run)
    elif check in ("wrong_source", "wrong_anchor", "control_plane_drift"):
        usage = {r.usage_record_id for r in run}
        impact = sum(price_recorded(draft, r) - price_correct(draft, r) for r in run)
    elif check == "ledger_mismatch":
        if fl == "missing_debit":
            usage = {r.usage_record_id for r in run}
            impact = -sum(r.amount for r in run)
        elif fl == "wrong_amount":
            usage = {r.usage_record_id for r in run}
            ledger = {r.debit_id for r in run}
            impact = sum(r.wrong_delta for r in run)
        else:
            ledger = {r.orphan_id for r in run}
            impact = sum(r.amount for r in run)
    elif check == "duplicate_charge":
        for r in run:
            d = next(x for x in draft.rows if x.dup_of is r)
            usage |= {r.usage_record_id, d.usage_record_id}
            ledger.add(d.debit_id)
            impact += d.amount
    return usage, ledger, impact


def correct_cases(draft: Draft, changed_cards: list[str], change_plant: Plant | None) -> None:
    """Record every planted case, the rate card change, and the observed kinds the layout has;
    an observed kind the spec asked for but the layout lacks is an error."""
    for plant, rows, cards in draft.plant_rows:
        draft.correct.append(_planted(draft, plant, rows, cards))
    if change_plant is not None:
        draft.correct.append(_rate_card_change(draft, changed_cards, change_plant))
    for inst in draft.insts:
        draft.correct.extend(_observed(draft, inst))
    present = {c.kind for c in draft.correct}
    for plant in draft.spec.correct_cases:
        if plant.kind in OBSERVED and plant.kind not in present:
            raise ScenarioError(f"{plant.kind} was asked for but the layout has none")


def _planted(draft: Draft, plant: Plant, rows: list[Row], cards: tuple[str, ...]) -> CorrectCase:
    aid = plant.instance
    urs = frozenset(r.usage_record_id for r in rows if r.usage_record_id)
    les = frozenset(
        x for r in rows for x in (r.debit_id, *r.credit_ids) if x
    )
    periods = tuple(sorted({r.period_start for r in rows}))
    if plant.kind == "half_even_tie":
        r = rows[0]
        card = matching_card(
            draft, r.inst.currency, r.comp.resource_class, r.usage_source, False,
            r.control_plane_scope, r.period_start,
        )
        exact = r.quantity * card.unit_price_micros * Decimal(10) ** EXPONENTS[
            r.inst.currency] / Decimal(10**6)
        note = (
            f"{aid} {r.comp.component} first hour: {r.quantity}s x "
            f"{card.unit_price_micros} micros = {exact} minor units exactly; "
            f"half-even gives {r.amount} (half-up would give {r.amount + 1})"
        )
    elif plant.kind == "duplicate_reversed":
        note = (
            f"{aid}: {rows[1].usage_record_id} duplicates {rows[0].usage_record_id}; "
            f"its debit {rows[1].debit_id} is reversed by {rows[1].credit_ids[0]}"
        )
    else:
        note = f"{aid}: {plant.kind} on correctly charged row {rows[0].usage_record_id}"
    return CorrectCase(plant.kind, aid, note, urs, les, cards, periods)


def _rate_card_change(draft: Draft, changed_cards: list[str], change_plant: Plant) -> CorrectCase:
    aid = change_plant.instance or ""
    inst = draft.by_id[aid]
    t = next(c.effective_from for c in draft.cards if c.rate_card_id == changed_cards[1])
    worker = inst.components[1]
    rows = [r for r in draft.rows if r.inst is inst and r.comp is worker and r.usage_record_id]
    return CorrectCase(
        "rate_card_change", aid,
        f"{changed_cards[0]} ends and {changed_cards[1]} starts at {rfc3339(t)}; "
        f"{aid} {worker.component} rows on both sides priced by their own card",
        frozenset(r.usage_record_id for r in rows),
        frozenset(r.debit_id for r in rows if r.debit_id),
        tuple(changed_cards),
        (t,),
    )


def _observed(draft: Draft, inst: Inst) -> list[CorrectCase]:
    """The kinds recorded wherever they occur: pending hours, allocation workers, JPY."""
    out: list[CorrectCase] = []
    aid = inst.app_instance_id
    if aid in draft.pending:
        out.append(
            CorrectCase(
                "grace_window_pending", aid,
                f"{aid}: {len(draft.pending[aid])} hour(s) ending less than 2h before now "
                "have no row yet (pending, not missing)",
                period_starts=tuple(draft.pending[aid]),
            )
        )
    if inst.mode == "on_allocation":
        rows = [
            r for r in draft.rows
            if r.inst is inst and not r.comp.control_plane and r.usage_record_id
            and r.usage_source == "allocation" and r.tag is None
        ]
        if rows:
            out.append(
                CorrectCase(
                    "on_allocation_worker_allocation", aid,
                    f"{aid}: worker rows billed as allocation {inst.allocation_id}",
                    frozenset(r.usage_record_id for r in rows),
                )
            )
    if inst.currency == "JPY":
        rows = [r for r in draft.rows if r.inst is inst and r.usage_record_id]
        out.append(
            CorrectCase(
                "jpy_exponent_zero", aid,
                f"{aid}: billed in JPY (exponent 0): amounts are whole yen",
                frozenset(r.usage_record_id for r in rows),
                frozenset(r.debit_id for r in rows if r.debit_id),
            )
        )
    return out


def _note(
    check: str, fl: str, inst: Inst, comp: str, periods: tuple[datetime, ...], run: list[Row]
) -> str:
    when = f"{rfc3339(periods[0])}" + (f" +{len(periods) - 1}h" if len(periods) > 1 else "")
    aid = inst.app_instance_id
    r = run[0]
    text = {
        ("missing_usage", "emitter"): "no metering event was ever emitted",
        ("missing_usage", "rejected"): "emitted and published, rejected by the billing worker",
        ("wrong_source", "managed_as_allocation"): "managed instance billed as allocation",
        ("wrong_source", "on_allocation_as_app_runtime"): "on_allocation worker billed as app_runtime",
        ("wrong_anchor", "project_id"): f"row anchored to {r.project_id}, not {inst.project_id}",
        ("wrong_anchor", "runtime_backend"): f"row says {r.runtime_backend}, instance runs "
        f"{inst.spec.runtime_backend}",
        ("wrong_anchor", "operating_mode"): f"row says {r.operating_mode}, instance is {inst.mode}",
        ("wrong_anchor", "control_plane_scope"): f"row says {r.control_plane_scope}, instance is "
        f"{inst.spec.control_plane_scope}",
        ("ledger_mismatch", "missing_debit"): "row has no usage debit",
        ("ledger_mismatch", "wrong_amount"): f"debit off by {r.wrong_delta} minor units",
        ("ledger_mismatch", "orphan_debit"): f"debit {r.orphan_id} names usage row "
        f"{r.ghost_usage_id}, which does not exist",
        ("control_plane_drift", "worker_as_control_plane"): "worker recorded as control plane",
        ("control_plane_drift", "control_plane_as_worker"): "control plane recorded as worker",
        ("duplicate_charge", "both_debited"): "hour recorded and debited twice",
    }[(check, fl)]
    return f"{check}/{fl}: {aid} {comp} {when}: {text}"
