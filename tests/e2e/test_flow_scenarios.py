"""The whole flow (real billing database, offline logs and traces) finds exactly the
drift a generated platform plants, for every lifecycle call's correlation id, and
nothing in the correct-but-tricky cases. Read as the data allows (a trace or an
instance's logs asked as soon as a source names it) or in the runbook's order
(``SourceSet.sequential``), every scenario gives the same thread, evidence and document."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from bot.diagnosis.model import Finding, Subject, Window
from bot.errors import SourceUnavailable
from bot.flows.diagnosis import SourceSet, diagnose
from bot.flows.steps_report import StepReport
from bot.scenario import Expected, Platform, ScenarioSpec, build_platform
from bot.sources.billing import PostgresBillingReader
from bot.sources.offline import OfflineEvidence
from bot.sources.protocols import Fetched, SourceCall
from tests.conftest import LoadedPlatform, every_injection, load
from tests.constants import NOW

Key = tuple[str, str | None, str]


def expected_by_key(platform: Platform, instances: set[str]) -> dict[Key, tuple[set[str], set[str], int]]:
    out: dict[Key, tuple[set[str], set[str], int]] = defaultdict(lambda: (set(), set(), 0))
    for e in platform.expected:
        if e.app_instance_id not in instances:
            continue
        u, le, imp = out[(e.check, e.app_instance_id, e.owning_layer)]
        out[(e.check, e.app_instance_id, e.owning_layer)] = (u | e.usage_record_ids, le | e.ledger_entry_ids,
                                                             imp + e.impact_minor)
    return dict(out)


def found_by_key(findings: list[Finding]) -> dict[Key, tuple[set[str], set[str], int]]:
    out: dict[Key, tuple[set[str], set[str], int]] = defaultdict(lambda: (set(), set(), 0))
    for f in findings:
        u, le, imp = out[(f.check, f.app_instance_id, f.owning_layer)]
        out[(f.check, f.app_instance_id, f.owning_layer)] = (u | set(f.usage_record_ids),
                                                             le | set(f.ledger_entry_ids), imp + f.impact_minor)
    return dict(out)


async def run_for(loaded: LoadedPlatform, subject: Subject) -> tuple[list[Finding], object]:
    evidence = OfflineEvidence(loaded.evidence)
    reader = PostgresBillingReader(loaded.billing_url, statement_timeout_ms=10_000)
    try:
        outcome = await diagnose(subject, Window(NOW - timedelta(days=7), NOW), NOW,
                                 SourceSet(evidence.logs, evidence.traces, reader))
    finally:
        await reader.aclose()
    return outcome.diagnosis.findings, outcome.diagnosis


def assert_matches(platform: Platform, findings: list[Finding], instances: set[str]) -> None:
    want = expected_by_key(platform, instances)
    got = found_by_key(findings)
    assert got == want


async def test_demo_disputed_call_finds_exactly_the_planted_drift(demo_loaded: LoadedPlatform) -> None:
    p = demo_loaded.platform
    cid = p.disputed_correlation_id
    assert cid is not None
    findings, d = await run_for(demo_loaded, Subject(correlation_id=cid))
    instances = set(p.subject_instances(cid))
    assert len(instances) > 1
    assert_matches(p, findings, instances)
    assert d.complete and d.freeze_recommended and d.scope == "project"  # type: ignore[attr-defined]


async def test_every_call_of_a_grid_with_every_injection(grid_loaded: LoadedPlatform) -> None:
    p = grid_loaded.platform
    kinds_seen: set[str] = set()
    for call in p.calls:
        findings, d = await run_for(grid_loaded, Subject(correlation_id=call.correlation_id))
        instances = set(p.subject_instances(call.correlation_id))
        assert_matches(p, findings, instances)
        kinds_seen |= {f.check for f in findings}
        assert d.trace_ids == [call.trace_id]  # type: ignore[attr-defined]
    assert kinds_seen == {e.check for e in p.expected}


async def test_app_instance_subject_matches_too(grid_loaded: LoadedPlatform) -> None:
    p = grid_loaded.platform
    for aid in sorted({e.app_instance_id for e in p.expected})[:6]:
        findings, d = await run_for(grid_loaded, Subject(app_instance_id=aid))
        want = {k: v for k, v in expected_by_key(p, {aid}).items()}
        got = {k: v for k, v in found_by_key(findings).items() if k[1] == aid}
        assert got == want
        assert d.subject.correlation_id is None  # type: ignore[attr-defined]


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_seeds_with_no_injection_find_nothing(seed: int, fresh_database: str, tmp_path: Path) -> None:
    spec = ScenarioSpec.grid(2, 1, 4, correct_cases=("duplicate_reversed", "refund_credit", "promo_credit",
                                                      "half_even_tie", "rate_card_change"))
    loaded = await load(build_platform(spec, now=NOW, seed=seed), fresh_database, tmp_path / "ev")
    for call in loaded.platform.calls:
        findings, _ = await run_for(loaded, Subject(correlation_id=call.correlation_id))
        assert findings == [], [f.summary for f in findings]
    conn = await asyncpg.connect(fresh_database)
    try:
        assert await conn.fetchval("select count(*) from billing.usage_records") > 100
    finally:
        await conn.close()


async def test_seeds_with_every_injection(fresh_database: str, tmp_path: Path) -> None:
    for seed in (21, 22):
        spec = ScenarioSpec.grid(2, 2, 3, injections=every_injection())
        loaded = await load(build_platform(spec, now=NOW, seed=seed), fresh_database, tmp_path / f"ev{seed}")
        for call in loaded.platform.calls:
            findings, _ = await run_for(loaded, Subject(correlation_id=call.correlation_id))
            assert_matches(loaded.platform, findings, set(loaded.platform.subject_instances(call.correlation_id)))


def test_expected_type_is_what_the_helpers_compare() -> None:
    assert {"check", "app_instance_id", "usage_record_ids", "ledger_entry_ids", "owning_layer",
            "impact_minor"} <= set(Expected.__dataclass_fields__)


async def test_org_scope_screens_rows_in_the_database_and_finds_the_same(grid_loaded: LoadedPlatform) -> None:
    p = grid_loaded.platform
    org = p.instances[0].org_id
    reader = PostgresBillingReader(grid_loaded.billing_url, statement_timeout_ms=10_000)
    try:
        outcome = await diagnose(Subject(org_id=org), Window(NOW - timedelta(days=7), NOW), NOW,
                                 SourceSet(None, None, reader, {"loki": "not configured", "tempo": "not configured"}),
                                 org_scope=(org, None))
    finally:
        await reader.aclose()
    calls = [c.request for s in outcome.steps for c in s.calls]
    assert "screen_usage" in calls and "usage_for_instances" not in calls
    org_instances = {i.app_instance_id for i in p.instances if i.org_id == org}
    # without logs the owner of missing usage is not confirmed: compare the rest exactly
    want = {(k[0], k[1]): v for k, v in expected_by_key(p, org_instances).items()}
    got = {(k[0], k[1]): v for k, v in found_by_key(outcome.diagnosis.findings).items()}
    assert got == want and want
    assert outcome.diagnosis.complete is False and outcome.diagnosis.sources.billing == "ok"


# ------------------------------------------------------------------ in the data's order and the runbook's


class Taken:
    """What an observer sees: the steps in the thread's order, and every source call with
    what came back (the evidence), when and how long aside."""

    def __init__(self) -> None:
        self.thread: list[tuple[str, str]] = []
        self.evidence: list[tuple[str, ...]] = []

    async def step_started(self, name: str, title: str) -> None:
        self.thread.append(("started", name))

    async def step_finished(self, report: StepReport) -> None:
        self.thread.append(("finished", report.name))

    async def source_call(self, step: str, call: SourceCall, items: Sequence[Any], error: str | None) -> None:
        # the rows as a multiset: a query without a total order may answer in another order
        # once PostgreSQL's autovacuum has analysed the freshly loaded tables
        self.evidence.append((step, call.source, call.kind, call.request, repr(sorted(call.params.items())),
                              repr(call.window), call.via, repr(sorted(map(repr, items))), repr(error)))


class DownTraces:
    """Tempo that never answers."""

    label = "tempo down"

    async def get_trace(self, trace_id: str, window: Window) -> Fetched[Any]:
        raise SourceUnavailable("tempo", "connection refused")


async def one_way(loaded: LoadedPlatform, subject: Subject, *, sequential: bool, tempo_down: bool = False,
                  org_scope: tuple[str, str | None] | None = None) -> tuple[Any, ...]:
    evidence = OfflineEvidence(loaded.evidence)
    reader = PostgresBillingReader(loaded.billing_url, statement_timeout_ms=10_000)
    taken = Taken()
    sources = SourceSet(evidence.logs, DownTraces() if tempo_down else evidence.traces, reader,
                        sequential=sequential)
    try:
        outcome = await diagnose(subject, Window(NOW - timedelta(days=7), NOW), NOW, sources, taken,
                                 org_scope=org_scope)
    finally:
        await reader.aclose()
    asked = [e[1:5] for e in taken.evidence]
    assert len(asked) == len(set(asked)), "a request was repeated"
    steps = [(r.name, r.state, r.lines, r.findings, r.verdict) for r in outcome.steps]
    return outcome.diagnosis.model_dump(mode="json"), steps, taken.thread, sorted(taken.evidence)


async def assert_same_both_ways(loaded: LoadedPlatform, subjects: Sequence[Subject], **kw: Any) -> None:
    for subject in subjects:
        runbook = await one_way(loaded, subject, sequential=True, **kw)
        data = await one_way(loaded, subject, sequential=False, **kw)
        assert data[:3] == runbook[:3], subject
        assert set(data[3]) ^ set(runbook[3]) == set(), subject  # the evidence that differs
        assert data[3] == runbook[3], subject


async def test_demo_reads_the_same_in_the_data_order_as_in_the_runbook_order(demo_loaded: LoadedPlatform) -> None:
    p = demo_loaded.platform
    subjects = [Subject(correlation_id=c.correlation_id) for c in p.calls]
    # calls whose rows name everything, and calls only the logs tell about (no usage row)
    assert any(not p.subject_instances(c.correlation_id) or
               not [u for u in p.usage if u.correlation_id == c.correlation_id] for c in p.calls)
    subjects += [Subject(app_instance_id=a) for a in sorted({e.app_instance_id for e in p.expected})[:4]]
    await assert_same_both_ways(demo_loaded, subjects)
    cid = p.disputed_correlation_id
    assert cid is not None
    await assert_same_both_ways(demo_loaded, [Subject(correlation_id=cid)], tempo_down=True)
    org = p.instances[0].org_id
    await assert_same_both_ways(demo_loaded, [Subject(org_id=org)], org_scope=(org, None))


async def test_grid_reads_the_same_in_the_data_order_as_in_the_runbook_order(grid_loaded: LoadedPlatform) -> None:
    await assert_same_both_ways(grid_loaded, [Subject(correlation_id=c.correlation_id)
                                              for c in grid_loaded.platform.calls])
