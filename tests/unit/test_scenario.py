"""The scenario generator: deterministic, rule-abiding where correct, honest answer key.

Everything is recomputed here independently of the generator (``bot.scenario``): rate-card
matching, rule 5 with ``Decimal`` and ``ROUND_HALF_EVEN``, rule 1's source, the hours
an instance ran. No database.
"""

from __future__ import annotations

import base64
import json
import re
from collections import Counter, defaultdict
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path

import pytest

from bot.diagnosis.model import (
    CHECKS,
    AppInstance,
    Component,
    LogEvent,
    RateCard,
    Span,
    UsageRecord,
)
from bot.ids import validate_id
from bot.scenario import (
    ALL_CORRECT_CASES,
    FLAVOURS,
    CorrectCase,
    Injection,
    Plant,
    Platform,
    ScenarioError,
    ScenarioSpec,
    build_platform,
    demo_spec,
)
from bot.scenario.evidence import billing_evidence
from bot.scenario.evidence_files import write_evidence
from tests.conftest import every_injection
from tests.constants import H

NOW = datetime(2026, 3, 10, 14, 37, 12, 345678, tzinfo=UTC)  # this file's own clock, not on a whole second
EXP = {"USD": 2, "EUR": 2, "JPY": 0}
HEX32 = re.compile(r"[0-9a-f]{32}")


@pytest.fixture(scope="module")
def demo() -> Platform:
    return build_platform(demo_spec(), now=NOW, seed=11)


def all_flavours_spec() -> ScenarioSpec:
    return ScenarioSpec.grid(
        3, 2, 3, injections=every_injection(), correct_cases=ALL_CORRECT_CASES
    )


# ------------------------------------------------------------------ independent rules


def card_for(p: Platform, cur: str, rc: str, source: str, cp: bool, scope: str | None,
             at: datetime) -> RateCard:
    hits = [
        c for c in p.rate_cards
        if c.currency == cur and c.resource_class == rc and c.usage_source == source
        and c.control_plane == cp
        and (c.control_plane_scope is None or c.control_plane_scope == scope)
        and c.effective_from <= at and (c.effective_to is None or at < c.effective_to)
    ]
    assert len(hits) == 1, (cur, rc, source, cp, scope, at, hits)
    return hits[0]


def rule5(quantity: Decimal, price: int, cur: str) -> int:
    exact = quantity * Decimal(price) * (Decimal(10) ** EXP[cur]) / Decimal(1_000_000)
    return int(exact.quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def currency(p: Platform, org_id: str) -> str:
    return next(a.currency for a in p.accounts if a.org_id == org_id)


def price_recorded(p: Platform, u: UsageRecord) -> int:
    cur = currency(p, u.org_id)
    c = card_for(p, cur, u.resource_class, u.usage_source, u.control_plane_component,
                 u.control_plane_scope, u.period_start)
    return rule5(u.quantity, c.unit_price_micros, cur)


def right_source(i: AppInstance, c: Component) -> str:
    return "app_runtime" if i.operating_mode == "managed" or c.control_plane else "allocation"


def price_correct(p: Platform, i: AppInstance, c: Component, at: datetime, q: Decimal) -> int:
    cur = currency(p, i.org_id)
    card = card_for(p, cur, c.resource_class, right_source(i, c), c.control_plane,
                    i.control_plane_scope, at)
    return rule5(q, card.unit_price_micros, cur)


def hours_run(i: AppInstance, now: datetime) -> list[tuple[datetime, Decimal]]:
    assert i.started_at is not None
    end = i.stopped_at or now
    h = i.started_at.replace(minute=0, second=0, microsecond=0)
    out = []
    while h < end:
        secs = (min(h + H, end) - max(h, i.started_at)) / timedelta(microseconds=1)
        if secs > 0:
            out.append((h, (Decimal(int(secs)) / Decimal(1_000_000)).quantize(Decimal("0.000001"))))
        h += H
    return out


def comps_of(p: Platform) -> dict[tuple[str, str], Component]:
    return {(c.app_instance_id, c.component): c for c in p.components}


def injected_usage_ids(p: Platform) -> set[str]:
    return {u for e in p.expected for u in e.usage_record_ids}


# ------------------------------------------------------------------ determinism


def test_same_seed_same_platform() -> None:
    a = build_platform(all_flavours_spec(), now=NOW, seed=5)
    b = build_platform(all_flavours_spec(), now=NOW, seed=5)
    assert a.usage == b.usage
    assert a.ledger == b.ledger
    assert a.instances == b.instances
    assert a.rate_cards == b.rate_cards
    assert [(e.ts, e.service, dict(e.line)) for e in a.logs] == [
        (e.ts, e.service, dict(e.line)) for e in b.logs
    ]
    assert a.spans == b.spans
    assert a.expected == b.expected
    assert a.correct_cases == b.correct_cases
    c = build_platform(all_flavours_spec(), now=NOW, seed=6)
    assert [u.source_event_id for u in c.usage] != [u.source_event_id for u in a.usage]


def test_zero_injections_zero_expected() -> None:
    p = build_platform(ScenarioSpec.grid(1, 1, 3, currencies=("USD",)), now=NOW, seed=3)
    assert p.expected == []
    assert len(p.instances) == 3
    assert p.usage and p.ledger and p.logs and p.spans


def test_grid_layout() -> None:
    p = build_platform(ScenarioSpec.grid(3, 2, 3), now=NOW, seed=9)
    assert [a.currency for a in p.accounts] == ["USD", "EUR", "JPY"]
    assert len({i.project_id for i in p.instances}) == 6 and len(p.instances) == 18
    assert {(i.runtime_backend, i.operating_mode) for i in p.instances} == {
        (b, m) for b in ("kubernetes", "ray", "slurm") for m in ("managed", "on_allocation")
    }
    assert all((i.allocation_id is not None) == (i.operating_mode == "on_allocation")
               for i in p.instances)
    kinds = {(c.app_instance_id, c.component, c.control_plane, c.resource_class)
             for c in p.components}
    for i in p.instances:
        mine = {(k[1], k[2]) for k in kinds if k[0] == i.app_instance_id}
        assert mine == {
            "ray": {("ray-head", True), ("ray-worker", False)},
            "slurm": {("slurmctld", True), ("slurmd", False)},
            "kubernetes": {("operator", True), ("worker", False)},
        }[i.runtime_backend]
    assert p.disputed_correlation_id is not None
    assert len(p.subject_instances(p.disputed_correlation_id)) == 3
    for i in p.instances:
        assert i.started_at is not None and i.started_at < NOW - timedelta(hours=7)
        assert (i.status == "running") == (i.stopped_at is None)


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_every_flavour_builds_for_several_seeds(seed: int) -> None:
    p = build_platform(all_flavours_spec(), now=NOW + seed * timedelta(minutes=17), seed=seed)
    got = Counter((e.check, e.flavour) for e in p.expected)
    assert got == Counter((c, f) for c, fs in FLAVOURS.items() for f in fs)
    check_answer_key(p)
    check_correct_data(p)


def test_bad_spec_is_refused() -> None:
    spec = ScenarioSpec.grid(1, 1, 2, currencies=("USD",))
    with pytest.raises(ScenarioError):
        build_platform(replace(spec, injections=(Injection("wrong_source", instance="ai-nope"),)),
                       now=NOW, seed=1)
    with pytest.raises(ScenarioError):  # one project: no other project to mis-anchor to
        build_platform(replace(spec, injections=(Injection("wrong_anchor", "project_id"),)),
                       now=NOW, seed=1)
    with pytest.raises(ScenarioError):  # no JPY org
        build_platform(replace(spec, correct_cases=(Plant("jpy_exponent_zero"),)), now=NOW, seed=1)


# ------------------------------------------------------------------ the answer key


def check_answer_key(p: Platform) -> None:
    usage = {u.usage_record_id: u for u in p.usage}
    ledger = {e.ledger_entry_id: e for e in p.ledger}
    insts = {i.app_instance_id: i for i in p.instances}
    comps = comps_of(p)
    for e in p.expected:
        i = insts[e.app_instance_id]
        assert e.currency == currency(p, i.org_id)
        assert e.correlation_id and all(u in usage for u in e.usage_record_ids), e
        assert all(x in ledger for x in e.ledger_entry_ids), e
        assert e.owning_layer in ("metering_emitter", "attribution_mapping", "billing_worker")
        rows = [usage[u] for u in e.usage_record_ids]
        assert all(u.correlation_id == e.correlation_id for u in rows)
        if e.check == "missing_usage":
            assert not e.usage_record_ids and not e.ledger_entry_ids
            assert e.component is not None
            c = comps[(i.app_instance_id, e.component)]
            q = dict(hours_run(i, p.now))
            impact = 0
            for ps in e.period_starts:
                assert ps + H + 2 * H <= p.now, "missing hour inside the grace window"
                assert not [u for u in p.usage if u.app_instance_id == i.app_instance_id
                            and u.component == e.component and u.period_start == ps]
                impact -= price_correct(p, i, c, ps, q[ps])
            assert e.impact_minor == impact < 0
            assert e.owning_layer == ("metering_emitter" if e.flavour == "emitter" else "billing_worker")
        elif e.check in ("wrong_source", "wrong_anchor", "control_plane_drift"):
            assert rows and not e.ledger_entry_ids
            impact = 0
            for u in rows:
                c = comps[(i.app_instance_id, u.component or "")]
                impact += price_recorded(p, u) - price_correct(p, i, c, u.period_start, u.quantity)
                debit = [d for d in p.ledger if d.usage_record_id == u.usage_record_id]
                assert [d.amount_minor for d in debit] == [price_recorded(p, u)]  # as recorded
                if e.check == "wrong_source":
                    assert u.usage_source != right_source(i, c)
                elif e.check == "control_plane_drift":
                    assert u.control_plane_component != c.control_plane
                else:
                    assert any(getattr(u, f) != getattr(i, f) for f in (
                        "project_id", "runtime_backend", "operating_mode", "control_plane_scope"))
            assert e.impact_minor == impact
            if e.check != "wrong_anchor":
                assert impact != 0
        elif e.check == "ledger_mismatch":
            if e.flavour == "missing_debit":
                (u,) = rows
                assert not [d for d in p.ledger if d.usage_record_id == u.usage_record_id]
                assert e.impact_minor == -price_recorded(p, u)
            elif e.flavour == "wrong_amount":
                (u,) = rows
                (d,) = (ledger[x] for x in e.ledger_entry_ids)
                assert d.usage_record_id == u.usage_record_id
                assert e.impact_minor == d.amount_minor - price_recorded(p, u) != 0
            else:
                assert not e.usage_record_ids
                (d,) = (ledger[x] for x in e.ledger_entry_ids)
                assert d.kind == "usage" and d.direction == "debit"
                assert d.usage_record_id and d.usage_record_id not in usage  # deliberately
                assert e.impact_minor == d.amount_minor > 0
                posted = [x for x in p.logs if x.event == "billing.ledger_posted"
                          and x.get("ledger_entry_id") == d.ledger_entry_id]
                assert [x.app_instance_id for x in posted] == [i.app_instance_id]
        elif e.check == "duplicate_charge":
            assert len(rows) == 2
            a, b = sorted(rows, key=lambda u: u.recorded_at)
            assert (a.component, a.period_start) == (b.component, b.period_start)
            assert a.source_event_id != b.source_event_id
            (d,) = (ledger[x] for x in e.ledger_entry_ids)
            assert d.usage_record_id == b.usage_record_id
            assert not [r for r in p.ledger if r.reverses_entry_id == d.ledger_entry_id]
            assert e.impact_minor == d.amount_minor > 0


def test_demo_answer_key(demo: Platform) -> None:
    check_answer_key(demo)


def test_demo_has_every_check_flavour_and_correct_case(demo: Platform) -> None:
    assert {e.check for e in demo.expected} == set(CHECKS)
    assert {(e.check, e.flavour) for e in demo.expected} == {
        (c, f) for c, fs in FLAVOURS.items() for f in fs
    }
    assert {c.kind for c in demo.correct_cases} == set(ALL_CORRECT_CASES)
    assert {a.currency for a in demo.accounts} == {"USD", "EUR", "JPY"}
    assert {(i.runtime_backend, i.operating_mode) for i in demo.instances} == {
        (b, m) for b in ("kubernetes", "ray", "slurm") for m in ("managed", "on_allocation")
    }
    assert {i.status for i in demo.instances} == {"running", "stopped"}
    assert len({i.project_id for i in demo.instances}) >= 4


def test_demo_disputed_call_is_project_wide_with_findings(demo: Platform) -> None:
    corr = demo.disputed_correlation_id
    assert corr is not None and validate_id(corr) == corr
    call = demo.call(corr)
    assert call.action == "start" and len(call.app_instance_ids) >= 3
    assert len({demo.instance(a).project_id for a in call.app_instance_ids}) == 1
    subject = demo.subject_instances(corr)
    assert subject == sorted(call.app_instance_ids)
    with_findings = {e.app_instance_id for e in demo.expected if e.app_instance_id in subject}
    assert len(with_findings) >= 2
    assert len(with_findings) < len(subject)  # one of them is clean
    roots = [s for s in demo.spans if s.trace_id == call.trace_id and s.parent_span_id is None]
    assert [r.name for r in roots] == ["POST /v1/app-instances/{id}/start"]
    spans = [s for s in demo.spans if s.trace_id == call.trace_id]
    assert {s.attributes.get("app_instance_id") for s in spans} >= set(call.app_instance_ids)
    assert any(s.name == "payment.webhook" for s in spans)  # funded
    assert any(s.status == "error" for s in spans)  # the rejected usage event


# ------------------------------------------------------------------ correct data


def check_correct_data(p: Platform) -> None:
    insts = {i.app_instance_id: i for i in p.instances}
    comps = comps_of(p)
    bad = injected_usage_ids(p)
    rows_by_slot: dict[tuple[str, str, datetime], list[UsageRecord]] = defaultdict(list)
    for u in p.usage:
        assert u.app_instance_id is not None and u.component is not None
        rows_by_slot[(u.app_instance_id, u.component, u.period_start)].append(u)
        assert u.period_start.minute == u.period_start.second == u.period_start.microsecond == 0
        assert u.period_end - u.period_start == H
        assert u.period_end + 2 * H <= p.now, "a row inside the grace window"
        assert u.unit == "second" and u.quantity == u.quantity.quantize(Decimal("0.000001"))
        assert u.trace_id and HEX32.fullmatch(u.trace_id)
        assert u.correlation_id and validate_id(u.correlation_id)
        i = insts[u.app_instance_id]
        c = comps[(i.app_instance_id, u.component)]
        call = next(x for x in p.calls if x.action == "start" and i.app_instance_id in x.app_instance_ids)
        assert (u.correlation_id, u.trace_id) == (call.correlation_id, call.trace_id)
        assert u.resource_class == c.resource_class
        assert 0 < u.quantity <= 3600
        if u.usage_record_id in bad:
            continue
        assert u.usage_source == right_source(i, c)
        assert u.allocation_id == (i.allocation_id if u.usage_source == "allocation" else None)
        for f in ("org_id", "project_id", "app_instance_id", "operating_mode",
                  "control_plane_scope", "runtime_backend"):
            assert getattr(u, f) == getattr(i, f), f
        assert u.control_plane_component == c.control_plane
    # rule 4: every due hour of every component has its row (unless injected missing)
    missing = {(e.app_instance_id, e.component, ps) for e in p.expected
               if e.check == "missing_usage" for ps in e.period_starts}
    for i in p.instances:
        for h, q in hours_run(i, p.now):
            for c in (c for c in p.components if c.app_instance_id == i.app_instance_id):
                rows = rows_by_slot.get((i.app_instance_id, c.component, h), [])
                if h + 3 * H > p.now or (i.app_instance_id, c.component, h) in missing:
                    assert not rows
                else:
                    assert rows and all(u.quantity == q for u in rows)
                    assert len(rows) == 1 or all(u.usage_record_id in bad for u in rows) or (
                        any(cc.kind == "duplicate_reversed" and u.usage_record_id in cc.usage_record_ids
                            for u in rows for cc in p.correct_cases))
    # rule 7: source_event_id unique
    assert len({u.source_event_id for u in p.usage}) == len(p.usage)
    # rules 5 and 6 for every debit not named by the answer key
    wrong = {x for e in p.expected if e.check == "ledger_mismatch" for x in e.ledger_entry_ids}
    debited: Counter[str] = Counter()
    usage = {u.usage_record_id: u for u in p.usage}
    for d in p.ledger:
        assert d.amount_minor >= 0 and d.currency == currency(p, d.org_id)
        if d.kind != "usage":
            assert d.direction == "credit" and d.kind in ("reversal", "refund", "promo_credit")
            continue
        assert d.direction == "debit"
        if d.ledger_entry_id in wrong:
            continue
        u = usage[d.usage_record_id or ""]
        debited[u.usage_record_id] += 1
        assert d.amount_minor == price_recorded(p, u), d
        assert d.correlation_id == u.correlation_id and d.project_id == u.project_id
    no_debit = {u for e in p.expected if e.flavour in ("missing_debit", "wrong_amount")
                for u in e.usage_record_ids}
    for u in p.usage:
        assert debited[u.usage_record_id] == (0 if u.usage_record_id in no_debit else 1)
    for d in p.ledger:
        if d.kind == "reversal":
            target = next(x for x in p.ledger if x.ledger_entry_id == d.reverses_entry_id)
            assert target.kind == "usage" and target.amount_minor == d.amount_minor
            assert target.posted_at < d.posted_at


def test_demo_correct_data(demo: Platform) -> None:
    check_correct_data(demo)


def test_clean_grid_correct_data() -> None:
    for seed in (1, 2):
        check_correct_data(build_platform(ScenarioSpec.grid(3, 2, 3), now=NOW, seed=seed))


def test_rate_cards_match_exactly_one_and_differ_where_it_matters(demo: Platform) -> None:
    for cur in ("USD", "EUR", "JPY"):
        for rc in ("gpu.h100", "gpu.a100", "cpu.standard"):
            def price(src: str, cp: bool, scope: str, cur: str = cur, rc: str = rc) -> int:
                return card_for(demo, cur, rc, src, cp, scope, NOW).unit_price_micros
            assert price("allocation", False, "dedicated") != price("app_runtime", False, "dedicated")
            assert price("app_runtime", True, "dedicated") != price("app_runtime", False, "dedicated")
            assert price("app_runtime", True, "shared") != price("app_runtime", True, "dedicated")


# ------------------------------------------------------------------ the tricky cases


def cases(p: Platform, kind: str) -> list[CorrectCase]:
    return [c for c in p.correct_cases if c.kind == kind]


def test_grace_window_hours_have_no_rows(demo: Platform) -> None:
    pending = cases(demo, "grace_window_pending")
    assert pending
    for c in pending:
        assert c.period_starts
        for ps in c.period_starts:
            assert ps + 3 * H > demo.now
            assert not [u for u in demo.usage
                        if u.app_instance_id == c.app_instance_id and u.period_start == ps]
            assert not [e for e in demo.logs if e.event == "metering.emitted"
                        and e.app_instance_id == c.app_instance_id
                        and e.get("period_start") == ps.isoformat(timespec="microseconds")
                        .replace("+00:00", "Z")]


def test_half_even_tie(demo: Platform) -> None:
    (case,) = cases(demo, "half_even_tie")
    (uid,) = case.usage_record_ids
    u = next(x for x in demo.usage if x.usage_record_id == uid)
    cur = currency(demo, u.org_id)
    card = card_for(demo, cur, u.resource_class, u.usage_source, u.control_plane_component,
                    u.control_plane_scope, u.period_start)
    exact = u.quantity * card.unit_price_micros * Decimal(10) ** EXP[cur] / Decimal(10**6)
    assert exact % 1 == Decimal("0.5")
    (d,) = [x for x in demo.ledger if x.usage_record_id == uid]
    assert d.amount_minor == int(exact - Decimal("0.5")) and d.amount_minor % 2 == 0
    assert u.quantity < 3600  # the instance's first, partial hour


def test_duplicate_reversed_refund_promo(demo: Platform) -> None:
    (dup,) = cases(demo, "duplicate_reversed")
    rows = [u for u in demo.usage if u.usage_record_id in dup.usage_record_ids]
    assert len(rows) == 2 and len({(u.component, u.period_start) for u in rows}) == 1
    entries = [e for e in demo.ledger if e.ledger_entry_id in dup.ledger_entry_ids]
    reversals = [e for e in entries if e.kind == "reversal"]
    assert len(reversals) == 1 and reversals[0].direction == "credit"
    assert reversals[0].reverses_entry_id in {e.ledger_entry_id for e in entries if e.kind == "usage"}
    for kind, ledger_kind in (("refund_credit", "refund"), ("promo_credit", "promo_credit")):
        (c,) = cases(demo, kind)
        (uid,) = c.usage_record_ids
        credits = [e for e in demo.ledger if e.usage_record_id == uid and e.kind == ledger_kind]
        assert len(credits) == 1 and credits[0].direction == "credit"
        assert uid not in injected_usage_ids(demo)
    assert not {u for c in demo.correct_cases for u in c.usage_record_ids
                if c.kind in ("duplicate_reversed", "refund_credit", "promo_credit", "half_even_tie")
                } & injected_usage_ids(demo)


def test_rate_card_change_inside_window(demo: Platform) -> None:
    (c,) = cases(demo, "rate_card_change")
    old_id, new_id = c.rate_card_ids
    old = next(r for r in demo.rate_cards if r.rate_card_id == old_id)
    new = next(r for r in demo.rate_cards if r.rate_card_id == new_id)
    assert old.effective_to == new.effective_from == c.period_starts[0]
    assert demo.window().start < new.effective_from < demo.now
    assert old.unit_price_micros != new.unit_price_micros
    rows = [u for u in demo.usage if u.usage_record_id in c.usage_record_ids]
    before = [u for u in rows if u.period_start < new.effective_from]
    after = [u for u in rows if u.period_start >= new.effective_from]
    assert before and after
    cur = currency(demo, rows[0].org_id)
    for u in rows:
        card = old if u in before else new
        (d,) = [x for x in demo.ledger if x.usage_record_id == u.usage_record_id]
        assert d.amount_minor == rule5(u.quantity, card.unit_price_micros, cur)


def test_jpy_and_on_allocation(demo: Platform) -> None:
    jpy = cases(demo, "jpy_exponent_zero")
    assert jpy
    for c in jpy:
        for u in (x for x in demo.usage if x.usage_record_id in c.usage_record_ids):
            card = card_for(demo, "JPY", u.resource_class, u.usage_source,
                            u.control_plane_component, u.control_plane_scope, u.period_start)
            want = (u.quantity * card.unit_price_micros / Decimal(10**6)).quantize(
                Decimal(1), rounding=ROUND_HALF_EVEN)
            assert u.usage_record_id in injected_usage_ids(demo) or price_recorded(demo, u) == want
    alloc = cases(demo, "on_allocation_worker_allocation")
    assert alloc
    for c in alloc:
        i = demo.instance(c.app_instance_id or "")
        assert i.operating_mode == "on_allocation" and i.allocation_id
        for u in (x for x in demo.usage if x.usage_record_id in c.usage_record_ids):
            assert u.usage_source == "allocation" and u.allocation_id == i.allocation_id


# ------------------------------------------------------------------ logs and spans


def test_log_trail_per_row_and_per_injection(demo: Platform) -> None:
    by_event: dict[str, list[LogEvent]] = defaultdict(list)
    for e in demo.logs:
        by_event[e.event].append(e)
        assert e.labels["service"] == e.service and e.labels["env"] == "prod"
        for k in ("ts", "level", "msg", "event", "correlation_id", "trace_id", "span_id",
                  "org_id", "project_id"):
            assert e.line.get(k) not in (None, ""), (e.event, k)
        assert HEX32.fullmatch(e.trace_id or "")
    emitted = {e.get("source_event_id"): e for e in by_event["metering.emitted"]}
    published = {e.get("source_event_id") for e in by_event["outbox.published"]}
    recorded = {e.get("usage_record_id"): e for e in by_event["billing.usage_recorded"]}
    posted = {e.get("ledger_entry_id"): e for e in by_event["billing.ledger_posted"]}
    for u in demo.usage:
        assert u.source_event_id in emitted and u.source_event_id in published
        assert recorded[u.usage_record_id].get("source_event_id") == u.source_event_id
    for d in demo.ledger:
        if d.kind == "usage":
            assert posted[d.ledger_entry_id].get("usage_record_id") == d.usage_record_id
    services = {e.event: e.service for e in demo.logs}
    assert services["app.lifecycle.requested"] == "gpuaas-api"
    assert services["metering.emitted"] == services["outbox.published"] == "gpuaas-app-runtime-worker"
    assert services["billing.ledger_posted"] == "gpuaas-billing-worker"
    assert services["payment.webhook_delivered"] == "gpuaas-webhook-worker"
    for exp in demo.expected:
        if exp.check != "missing_usage":
            continue
        for ps in exp.period_starts:
            trail = [x for x in demo.logs if x.app_instance_id == exp.app_instance_id
                     and x.get("component") == exp.component
                     and x.get("period_start") == ps.isoformat(timespec="microseconds")
                     .replace("+00:00", "Z")]
            if exp.flavour == "emitter":
                assert trail == []
            else:
                (em,) = trail
                sid = em.get("source_event_id")
                assert sid in published
                assert [x.event for x in demo.logs if x.get("source_event_id") == sid
                        and x.event.startswith("billing.")] == ["billing.usage_rejected"]


def test_spans(demo: Platform) -> None:
    by_trace: dict[str, list[Span]] = defaultdict(list)
    for s in demo.spans:
        by_trace[s.trace_id].append(s)
        assert HEX32.fullmatch(s.trace_id) and re.fullmatch(r"[0-9a-f]{16}", s.span_id)
        assert s.attributes["correlation_id"]
        assert s.start <= s.end <= demo.now
    assert len(by_trace) == len(demo.calls)
    names = {s.name: s.service for s in demo.spans}
    assert names["outbox.publish"] == "gpuaas-app-runtime-worker"
    assert names["billing.handle_usage"] == names["billing.post_ledger"] == "gpuaas-billing-worker"
    assert names["payment.webhook"] == "gpuaas-webhook-worker"
    for call in demo.calls:
        spans = by_trace[call.trace_id]
        ids = {s.span_id for s in spans}
        roots = [s for s in spans if s.parent_span_id is None]
        assert len(roots) == 1 and roots[0].span_id == call.root_span_id
        assert roots[0].name == f"POST /v1/app-instances/{{id}}/{call.action}"
        assert all(s.parent_span_id in ids for s in spans if s.parent_span_id)
        assert all(s.attributes["correlation_id"] == call.correlation_id for s in spans)
        assert any(s.name == "payment.webhook" for s in spans) == call.funded
        for s in spans:
            if s.name == "billing.post_ledger":
                parent = next(x for x in spans if x.span_id == s.parent_span_id)
                assert parent.name == "billing.handle_usage"


def test_ids_are_readable_and_safe(demo: Platform) -> None:
    for i in demo.instances:
        assert re.fullmatch(r"ai-(ray|slurm|k8s)-\d{4}", i.app_instance_id)
        assert re.fullmatch(r"org-[a-z]+", i.org_id) and i.project_id.startswith("prj-")
    assert all(re.fullmatch(r"ur-\d{7}", u.usage_record_id) for u in demo.usage)
    assert all(re.fullmatch(r"le-\d{7}", e.ledger_entry_id) for e in demo.ledger)
    assert all(u.source_event_id.startswith("src-") for u in demo.usage)
    for c in demo.calls:
        assert c.correlation_id.startswith("corr-") and validate_id(c.correlation_id)
    assert len({c.correlation_id for c in demo.calls}) == len(demo.calls)


# ------------------------------------------------------------------ evidence files


def test_write_evidence(demo: Platform, tmp_path: Path) -> None:
    folder = tmp_path / "evidence"
    (folder / "logs").mkdir(parents=True)
    (folder / "logs" / "stale.jsonl").write_text("old\n")
    (folder / "keep.txt").write_text("mine")
    counts = write_evidence(demo, folder)
    assert not (folder / "logs" / "stale.jsonl").exists()
    assert (folder / "keep.txt").read_text() == "mine"
    assert sorted(x.name for x in folder.iterdir()) == ["keep.txt", "logs", "traces"]
    assert counts["log_lines"] == len(demo.logs) and counts["traces"] == len(demo.calls)
    n = 0
    for path in (folder / "logs").iterdir():
        for raw in path.read_text().splitlines():
            entry = json.loads(raw)
            assert set(entry) == {"labels", "line", "timestamp"}
            assert entry["labels"]["service"] == path.stem and entry["labels"]["env"] == "prod"
            assert isinstance(entry["line"], str)
            line = json.loads(entry["line"])
            assert line["level"] == entry["labels"]["level"]
            assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z", entry["timestamp"])
            n += 1
    assert n == len(demo.logs)
    shapes: Counter[str] = Counter()
    for path in (folder / "traces").iterdir():
        doc = json.loads(path.read_text())
        if "batches" in doc:
            shapes["v1"] += 1
            batches, b64 = doc["batches"], True
        else:
            shapes["v2"] += 1
            batches, b64 = doc["trace"]["resourceSpans"], False

        def decode(v: str, b64: bool = b64) -> str:
            return base64.b64decode(v).hex() if b64 else v

        for b in batches:
            (svc,) = b["resource"]["attributes"]
            assert svc["key"] == "service.name" and svc["value"]["stringValue"].startswith("gpuaas-")
            for ss in b["scopeSpans"]:
                for s in ss["spans"]:
                    assert decode(s["traceId"]) == path.stem
                    assert len(decode(s["spanId"])) == 16
                    assert s["kind"].startswith("SPAN_KIND_")
                    assert int(s["startTimeUnixNano"]) <= int(s["endTimeUnixNano"])
                    assert s["status"] in ({}, {"code": "STATUS_CODE_ERROR"})
                    keys = {a["key"] for a in s["attributes"]}
                    assert "correlation_id" in keys
    assert shapes["v1"] > 0 and shapes["v2"] > 0
    write_evidence(demo, folder)  # twice: replaced, not appended
    again = sum(len(p.read_text().splitlines()) for p in (folder / "logs").iterdir())
    assert again == len(demo.logs)


# ------------------------------------------------------------------ in-memory evidence


def test_billing_evidence_is_what_the_flow_reads_for_the_subject(demo: Platform) -> None:
    orphan = next(e for e in demo.expected if e.flavour == "orphan_debit")
    subject = demo.subject_instances(orphan.correlation_id)
    ev = billing_evidence(demo, subject)
    assert {i.app_instance_id for i in ev.instances} == set(subject)
    assert {u.app_instance_id for u in ev.usage} == set(subject)
    assert {c.app_instance_id for c in ev.components} == set(subject)
    assert {e.app_instance_id for e in ev.logs} == set(subject)
    rows = {u.usage_record_id for u in ev.usage}
    assert orphan.ledger_entry_ids <= {e.ledger_entry_id for e in ev.ledger}
    assert all(e.usage_record_id in rows or e.ledger_entry_id in orphan.ledger_entry_ids for e in ev.ledger)
    assert {a.currency for a in ev.accounts} == {c.currency for c in ev.rate_cards} == {"JPY"}
    assert ev.window == demo.window(7) and ev.now == demo.now and ev.covered is None
    everything = billing_evidence(demo)
    assert len(everything.usage) == len(demo.usage) and len(everything.instances) == len(demo.instances)
    assert len(everything.ledger) == len(demo.ledger)
