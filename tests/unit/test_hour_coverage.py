"""Rule 4 over screened coverage: a run of hours (two timestamps) answers exactly as the
same hours listed one by one, and an instance whose runs cover every expected hour is
passed over without walking its hours."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.diagnosis.checks import BillingEvidence, run_checks
from bot.diagnosis.model import AppInstance, BillingAccount, Component, HourRun, Hours, RateCard, Window

HOUR = timedelta(hours=1)
T0 = datetime(2026, 3, 1, tzinfo=UTC)
NOW = T0 + 7 * 24 * HOUR + timedelta(minutes=40)
WINDOW = Window(T0, T0 + 7 * 24 * HOUR)


def test_a_run_holds_its_hour_starts_only() -> None:
    run = HourRun(T0, T0 + 3 * HOUR)
    assert [T0 + k * HOUR in run for k in (-1, 0, 1, 3, 4)] == [False, True, True, True, False]
    assert T0 + timedelta(minutes=30) not in run and "2026-03-01" not in run
    assert run.covers(T0 + HOUR, T0 + 2 * HOUR) and run.covers(T0, T0)
    assert not run.covers(T0 - HOUR, T0 + HOUR) and not run.covers(T0, T0 + 4 * HOUR)
    assert not run.covers(T0 + timedelta(minutes=1), T0 + 2 * HOUR)  # not an hour start of the run


def _instance(start_h: int, stop_h: int | None) -> AppInstance:
    return AppInstance("ai-1", "org-a", "prj-1", "ray_cluster", "managed", "dedicated", "ray", None,
                       "running" if stop_h is None else "stopped", T0 + start_h * HOUR + timedelta(minutes=7),
                       None if stop_h is None else T0 + stop_h * HOUR + timedelta(minutes=3))


def _findings(inst: AppInstance, covered: dict[tuple[str, str], Hours]) -> list[dict[str, object]]:
    comps = [Component("ai-1", "head", True, "cpu.standard"), Component("ai-1", "worker", False, "gpu.h100")]
    cards = [RateCard(f"rc-{c.component}", c.resource_class, "app_runtime", c.control_plane, None, "second",
                      1000, "USD", T0 - 100 * HOUR, None) for c in comps]
    ev = BillingEvidence(window=WINDOW, now=NOW, instances=[inst], components=comps, usage=[], ledger=[],
                         accounts=[BillingAccount("org-a", "USD")], rate_cards=cards, logs=[],
                         logs_available=False, covered=covered)
    return [f.model_dump() for f in run_checks(ev, ["missing_usage"])]


@settings(max_examples=150, deadline=None)
@given(start=st.integers(-30, 150), length=st.one_of(st.none(), st.integers(0, 200)),
       runs=st.lists(st.tuples(st.integers(-10, 180), st.integers(0, 180)), min_size=2, max_size=2))
def test_a_run_of_hours_finds_what_the_same_hours_listed_find(
        start: int, length: int | None, runs: list[tuple[int, int]]) -> None:
    inst = _instance(start, None if length is None else start + length)
    as_runs: dict[tuple[str, str], Hours] = {}
    as_sets: dict[tuple[str, str], Hours] = {}
    for comp, (first, n) in zip(("head", "worker"), runs, strict=True):
        run = HourRun(T0 + first * HOUR, T0 + (first + n) * HOUR)
        as_runs[("ai-1", comp)] = run
        as_sets[("ai-1", comp)] = frozenset(T0 + (first + k) * HOUR for k in range(n + 1))
    assert _findings(inst, as_runs) == _findings(inst, as_sets)


def test_a_gap_in_the_listed_hours_is_found_and_a_covering_run_finds_nothing() -> None:
    inst = _instance(-5, None)
    whole = HourRun(T0, T0 + 167 * HOUR)
    assert _findings(inst, {("ai-1", "head"): whole, ("ai-1", "worker"): whole}) == []
    gap = frozenset(T0 + k * HOUR for k in range(168) if k != 40)
    got = _findings(inst, {("ai-1", "head"): whole, ("ai-1", "worker"): gap})
    assert [(f["check"], f["period_starts"], f["owning_layer"]) for f in got] == [
        ("missing_usage", [T0 + 40 * HOUR], "metering_emitter")]
