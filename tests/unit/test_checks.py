"""The six checks on hand-built evidence: each broken rule is found, each correct
tricky case stays silent. Pure: no database, no HTTP."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from bot.diagnosis import core
from bot.diagnosis.checks import BillingEvidence, run_checks
from bot.diagnosis.model import (
    AppInstance,
    BillingAccount,
    Component,
    LedgerEntry,
    LogEvent,
    RateCard,
    UsageRecord,
    Window,
)
from bot.diagnosis.money import expected_minor
from tests.constants import H

NOW = datetime(2026, 11, 20, 12, 30, tzinfo=UTC)  # this file's own clock: its evidence is built by hand
T0 = datetime(2026, 11, 20, 0, 0, tzinfo=UTC)  # started at midnight, 10 full hours by 10:00
WINDOW = Window(NOW - timedelta(days=7), NOW)
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


def inst(aid: str = "ai-1", mode: str = "managed", project: str = "prj-1", org: str = "org-1",
         stopped: datetime | None = T0 + 4 * H) -> AppInstance:
    return AppInstance(aid, org, project, "ray_cluster", mode, "dedicated", "ray",
                       "alloc-1" if mode == "on_allocation" else None, "stopped" if stopped else "running",
                       T0, stopped)


def comps(aid: str = "ai-1") -> list[Component]:
    return [Component(aid, "ray-head", True, "cpu.standard"), Component(aid, "ray-worker", False, "gpu.h100")]


CARDS = [
    RateCard("rc1", "cpu.standard", "app_runtime", True, None, "second", 50, "USD", EPOCH, None),
    RateCard("rc2", "gpu.h100", "app_runtime", False, None, "second", 1000, "USD", EPOCH, None),
    RateCard("rc3", "gpu.h100", "allocation", False, None, "second", 800, "USD", EPOCH, None),
    RateCard("rc4", "gpu.h100", "app_runtime", True, None, "second", 1200, "USD", EPOCH, None),
    RateCard("rc5", "cpu.standard", "app_runtime", False, None, "second", 30, "USD", EPOCH, None),
    RateCard("rc6", "cpu.standard", "allocation", False, None, "second", 20, "USD", EPOCH, None),
]
ACCOUNTS = [BillingAccount("org-1", "USD"), BillingAccount("org-2", "JPY")]
PRICE = {"ray-head": (50, "cpu.standard"), "ray-worker": (1000, "gpu.h100")}


def row(i: AppInstance, comp: str, hour: int, *, uid: str | None = None, source: str | None = None,
        cp: bool | None = None, **over: object) -> UsageRecord:
    c = next(c for c in comps(i.app_instance_id) if c.component == comp)
    if source is None:
        source = "app_runtime" if i.operating_mode == "managed" or c.control_plane else "allocation"
    u = UsageRecord(
        usage_record_id=uid or f"ur-{i.app_instance_id}-{comp}-{hour}",
        source_event_id=f"src-{i.app_instance_id}-{comp}-{hour}",
        org_id=i.org_id, project_id=i.project_id, usage_source=source,
        allocation_id=i.allocation_id if source == "allocation" else None, app_instance_id=i.app_instance_id,
        component=comp, control_plane_component=c.control_plane if cp is None else cp,
        operating_mode=i.operating_mode, control_plane_scope=i.control_plane_scope, runtime_backend=i.runtime_backend,
        resource_class=c.resource_class, quantity=Decimal("3600.000000"), unit="second",
        period_start=T0 + hour * H, period_end=T0 + (hour + 1) * H, correlation_id="corr-1",
        trace_id="a" * 32, recorded_at=T0 + (hour + 1) * H + timedelta(minutes=5),
    )
    return replace(u, **over)  # type: ignore[arg-type]


def debit(u: UsageRecord, amount: int | None = None, lid: str | None = None) -> LedgerEntry:
    card = next(c for c in CARDS if c.resource_class == u.resource_class and c.usage_source == u.usage_source
                and c.control_plane == u.control_plane_component)
    amt = expected_minor(u.quantity, card.unit_price_micros, "USD") if amount is None else amount
    return LedgerEntry(lid or f"le-{u.usage_record_id}", u.org_id, u.project_id, u.usage_record_id, "debit", "usage",
                       amt, "USD", None, f"idem-{lid or u.usage_record_id}", u.correlation_id, None,
                       u.recorded_at + timedelta(minutes=1))


def credit(of: LedgerEntry, kind: str = "reversal", lid: str | None = None) -> LedgerEntry:
    return LedgerEntry(lid or f"cr-{of.ledger_entry_id}-{kind}", of.org_id, of.project_id,
                       None if kind == "reversal" else of.usage_record_id, "credit", kind, of.amount_minor, "USD",
                       of.ledger_entry_id if kind == "reversal" else None, f"idem-cr-{of.ledger_entry_id}-{kind}",
                       of.correlation_id, None, of.posted_at + H)


def full(i: AppInstance, hours: int = 4) -> list[UsageRecord]:
    return [row(i, c.component, h) for h in range(hours) for c in comps(i.app_instance_id)]


def evidence(i: AppInstance, usage: list[UsageRecord], ledger: list[LedgerEntry] | None = None,
             logs: list[LogEvent] | None = None, extra: list[AppInstance] = ()) -> BillingEvidence:  # type: ignore[assignment]
    instances = [i, *extra]
    return BillingEvidence(
        window=WINDOW, now=NOW, instances=instances,
        components=[c for x in instances for c in comps(x.app_instance_id)],
        usage=usage, ledger=[debit(u) for u in usage] if ledger is None else ledger,
        accounts=ACCOUNTS, rate_cards=CARDS, logs=logs or [],
    )


def checks_of(ev: BillingEvidence) -> list[tuple[str, str | None, tuple[str, ...]]]:
    return [(f.check, f.app_instance_id, tuple(f.usage_record_ids)) for f in run_checks(ev)]


def test_correct_instance_has_no_findings() -> None:
    i = inst()
    assert run_checks(evidence(i, full(i))) == []


def test_on_allocation_worker_billed_as_allocation_is_correct() -> None:
    i = inst(mode="on_allocation")
    rows = full(i)
    assert {u.usage_source for u in rows if u.component == "ray-worker"} == {"allocation"}
    assert run_checks(evidence(i, rows)) == []


def test_missing_hour_found_and_emitter_blamed_without_metering_log() -> None:
    i = inst()
    rows = [u for u in full(i) if not (u.component == "ray-worker" and u.period_start == T0 + 2 * H)]
    [f] = run_checks(evidence(i, rows))
    assert (f.check, f.owning_layer, f.period_starts) == ("missing_usage", "metering_emitter", [T0 + 2 * H])
    assert f.impact_minor == -expected_minor(Decimal(3600), 1000, "USD")


def _log(event: str, **fields: object) -> LogEvent:
    return LogEvent(ts=T0, service="gpuaas-app-runtime-worker", event=event, line={"event": event, **fields})


def test_missing_hour_published_but_not_recorded_blames_billing_worker() -> None:
    i = inst()
    rows = [u for u in full(i) if not (u.component == "ray-worker" and u.period_start == T0 + 2 * H)]
    logs = [
        _log("metering.emitted", source_event_id="s9", app_instance_id="ai-1", component="ray-worker",
             period_start=(T0 + 2 * H).isoformat()),
        _log("outbox.published", source_event_id="s9"),
    ]
    [f] = run_checks(evidence(i, rows, logs=logs))
    assert (f.check, f.owning_layer) == ("missing_usage", "billing_worker")


def test_hour_inside_grace_window_is_pending_not_missing() -> None:
    i = inst(stopped=None)  # still running at 12:30: hours 10, 11, 12 are pending (end + 2h > now)
    rows = full(i, hours=10)
    assert run_checks(evidence(i, rows)) == []
    rows9 = full(i, hours=9)  # hour 9 ended 10:00, +2h = 12:00 < 12:30: missing
    found = run_checks(evidence(i, rows9))
    assert [(f.check, f.period_starts) for f in found] == [("missing_usage", [T0 + 9 * H])] * 2  # both components
    assert ["ray-head" in found[0].summary, "ray-worker" in found[1].summary] == [True, True]


@pytest.mark.parametrize(
    ("mutate", "check"),
    [
        (lambda u: replace(u, usage_source="allocation", allocation_id="alloc-1"), "wrong_source"),
        (lambda u: replace(u, project_id="prj-other"), "wrong_anchor"),
        (lambda u: replace(u, runtime_backend="slurm"), "wrong_anchor"),
        (lambda u: replace(u, operating_mode="on_allocation"), "wrong_anchor"),
        (lambda u: replace(u, control_plane_scope="shared"), "wrong_anchor"),
        (lambda u: replace(u, control_plane_component=True), "control_plane_drift"),
    ],
)
def test_attribution_errors_are_their_own_finding_not_a_ledger_mismatch(mutate, check) -> None:  # type: ignore[no-untyped-def]
    i = inst()
    rows = full(i)
    bad = mutate(rows[3])  # ray-worker, hour 1
    rows[3] = bad
    found = run_checks(evidence(i, rows))  # debits priced as recorded
    assert [(f.check, f.usage_record_ids) for f in found] == [(check, [bad.usage_record_id])]


def test_wrong_source_impact_is_recorded_price_less_correct_price() -> None:
    i = inst()
    rows = full(i)
    rows[3] = replace(rows[3], usage_source="allocation", allocation_id=None)
    [f] = run_checks(evidence(i, rows))
    assert f.impact_minor == expected_minor(Decimal(3600), 800, "USD") - expected_minor(Decimal(3600), 1000, "USD")
    assert f.impact_minor < 0  # billed at the cheaper allocation rate: undercharged


def test_ledger_no_debit_wrong_amount_and_orphan() -> None:
    i = inst()
    rows = full(i)
    ledger = [debit(u) for u in rows]
    ledger[0] = debit(rows[0], amount=ledger[0].amount_minor + 7)
    del ledger[5]
    orphan = replace(debit(rows[1]), ledger_entry_id="le-orphan", usage_record_id="ur-gone", amount_minor=999)
    found = run_checks(evidence(i, rows, [*ledger, orphan]))
    got = {(f.check, tuple(f.usage_record_ids), tuple(f.ledger_entry_ids), f.impact_minor) for f in found}
    assert got == {
        ("ledger_mismatch", (rows[0].usage_record_id,), (f"le-{rows[0].usage_record_id}",), 7),
        ("ledger_mismatch", (rows[5].usage_record_id,), (), -debit(rows[5]).amount_minor),
        ("ledger_mismatch", (), ("le-orphan",), 999),
    }


def test_duplicate_charged_twice_is_found_and_reversed_duplicate_is_not() -> None:
    i = inst()
    rows = full(i)
    dup = replace(rows[2], usage_record_id="ur-dup", source_event_id="src-dup",
                  recorded_at=rows[2].recorded_at + H)
    ledger = [debit(u) for u in rows] + [debit(dup)]
    [f] = run_checks(evidence(i, [*rows, dup], ledger))
    assert f.check == "duplicate_charge"
    assert set(f.usage_record_ids) == {rows[2].usage_record_id, "ur-dup"}
    assert f.ledger_entry_ids == ["le-ur-dup"] and f.impact_minor == debit(dup).amount_minor
    # the extra debit reversed: correct, and no ledger mismatch for the duplicate row either
    assert run_checks(evidence(i, [*rows, dup], [*ledger, credit(debit(dup))])) == []


def test_refund_and_promo_credit_are_not_mismatches() -> None:
    i = inst()
    rows = full(i)
    ledger = [debit(u) for u in rows]
    concessions = [credit(ledger[0], "refund"), credit(ledger[1], "promo_credit")]
    assert run_checks(evidence(i, rows, [*ledger, *concessions])) == []


def test_half_even_and_jpy() -> None:
    assert expected_minor(Decimal("0.5"), 10_000, "USD") == 0  # 0.5 cent -> 0 (even)
    assert expected_minor(Decimal("1.5"), 10_000, "USD") == 2  # 1.5 -> 2
    assert expected_minor(Decimal("2.5"), 10_000, "USD") == 2  # 2.5 -> 2
    assert expected_minor(Decimal("3600"), 250_000, "JPY") == 900  # 900 yen, no minor unit
    assert expected_minor(Decimal("1"), 1_500_000, "JPY") == 2  # 1.5 yen -> 2


def test_rate_card_change_inside_window_prices_each_row_by_its_card() -> None:
    i = inst()
    change = T0 + 2 * H
    cards = [c for c in CARDS if c.rate_card_id != "rc2"] + [
        RateCard("rc2a", "gpu.h100", "app_runtime", False, None, "second", 1000, "USD", EPOCH, change),
        RateCard("rc2b", "gpu.h100", "app_runtime", False, None, "second", 1100, "USD", change, None),
    ]
    rows = full(i)
    ledger = []
    for u in rows:
        d = debit(u)
        if u.component == "ray-worker" and u.period_start >= change:
            d = replace(d, amount_minor=expected_minor(u.quantity, 1100, "USD"))
        ledger.append(d)
    ev = evidence(i, rows, ledger)
    ev.rate_cards = cards
    assert run_checks(ev) == []


def test_scope_and_freeze() -> None:
    a, b = inst("ai-1"), inst("ai-2")
    ra = full(a)
    rb = full(b)
    ra[0] = replace(ra[0], control_plane_component=False)
    rb[1] = replace(rb[1], control_plane_component=True)
    found = run_checks(evidence(a, [*ra, *rb], extra=[b]))
    assert {f.app_instance_id for f in found} == {"ai-1", "ai-2"}
    assert core.scope_of(found) == "project" and core.freeze_recommended(found)
    assert core.scope_of(found[:1]) == "app_instance" and not core.freeze_recommended(found[:1])
    impact = core.impact_of(found)
    assert {(r.app_instance_id, r.currency) for r in impact} == {("ai-1", "USD"), ("ai-2", "USD")}
