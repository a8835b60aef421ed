"""The database's screening (``screen_usage``: suspects, coverage, credits) against the full rows.

For several seeded scenario platforms with every injection flavour and every correct
case, loaded into a real PostgreSQL: ``run_checks`` over every usage row of the window
and ``run_checks`` over only the suspect rows plus the coverage must give the same
findings (no logs on either side: the screened path has none).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import asyncpg
import pytest

from bot.diagnosis.checks import BillingEvidence, run_checks
from bot.diagnosis.model import AppInstance, Finding, LedgerEntry, UsageRecord, Window
from bot.scenario import ALL_CORRECT_CASES, ScenarioSpec, build_platform
from bot.scenario.load import load_billing
from bot.sources.billing import PostgresBillingReader
from bot.sources.protocols import covered_hours, hidden_gaps, split_screened
from tests.conftest import every_injection

NOW = datetime(2026, 3, 2, 12, 30, tzinfo=UTC)  # this file's own clock: its platforms are its own


async def full_findings(
    reader: PostgresBillingReader, instances: Sequence[AppInstance], window: Window, now: datetime
) -> list[Finding]:
    ids = [i.app_instance_id for i in instances]
    comps = await reader.components(ids)
    usage = await reader.usage_for_instances(ids, window)
    ledger = await reader.ledger_for_usage([u.usage_record_id for u in usage.items])
    orphans = await reader.orphan_debits(sorted({(i.org_id, i.project_id) for i in instances}), window,
                                         [i.app_instance_id for i in instances])
    accounts = await reader.billing_accounts(sorted({i.org_id for i in instances}))
    cards = await reader.rate_cards(sorted({a.currency for a in accounts.items}))
    return run_checks(BillingEvidence(
        window=window, now=now, instances=list(instances), components=comps.items,
        usage=usage.items, ledger=ledger.items + orphans.items, accounts=accounts.items,
        rate_cards=cards.items, logs=[], logs_available=False,
    ))


async def screened_findings(
    reader: PostgresBillingReader, instances: Sequence[AppInstance], window: Window, now: datetime
) -> tuple[list[Finding], int]:
    ids = [i.app_instance_id for i in instances]
    comps = await reader.components(ids)
    got = split_screened((await reader.screen_usage(ids, window)).items,
                         {(i.org_id, i.project_id) for i in instances}, window)
    # the ledger read as the diagnosis asks it: the projects' credits the screening read are not read again
    ledger = await reader.ledger_for_usage([u.usage_record_id for u in got.usage], got.credits)
    again = await reader.ledger_for_usage([u.usage_record_id for u in got.usage])
    assert sorted(e.ledger_entry_id for e in ledger.items) == sorted(e.ledger_entry_id for e in again.items)
    # the orphans as the screening answers them: orphan_debits' answer for the same projects
    orphans = await reader.orphan_debits(sorted({(i.org_id, i.project_id) for i in instances}), window,
                                         [i.app_instance_id for i in instances])
    assert sorted(e.ledger_entry_id for e in got.orphans) == sorted(e.ledger_entry_id for e in orphans.items)
    assert sorted(got.orphans, key=str) == sorted(orphans.items, key=str)
    assert got.orphans, "every injection includes a debit without a usage row"
    accounts = await reader.billing_accounts(sorted({i.org_id for i in instances}))
    cards = await reader.rate_cards(sorted({a.currency for a in accounts.items}))
    gaps = hidden_gaps(got.coverage, got.usage)
    exact = (await reader.usage_hours(gaps, window)).items if gaps else []
    covered = covered_hours(got.coverage, exact)
    findings = run_checks(BillingEvidence(
        window=window, now=now, instances=list(instances), components=comps.items,
        usage=got.usage, ledger=ledger.items + got.orphans, accounts=accounts.items,
        rate_cards=cards.items, logs=[], logs_available=False, covered=covered,
    ))
    return findings, len(got.usage)


@pytest.mark.parametrize("seed", [1, 7, 42, 2026])
async def test_screened_findings_equal_full_findings(fresh_database: str, seed: int) -> None:
    spec = ScenarioSpec.grid(
        orgs=3, projects_per_org=2, instances_per_project=3,
        injections=every_injection(alternate_hours=True), correct_cases=ALL_CORRECT_CASES,
    )
    platform = build_platform(spec, now=NOW, seed=seed)
    conn = await asyncpg.connect(fresh_database)
    try:
        await load_billing(conn, platform, replace=True)
    finally:
        await conn.close()
    window = platform.window(7)
    async with PostgresBillingReader(fresh_database, 10_000) as reader:
        full = await full_findings(reader, platform.instances, window, platform.now)
        screened, n_suspects = await screened_findings(reader, platform.instances, window, platform.now)
    assert full, "the injections must produce findings"
    assert n_suspects < len(platform.usage) / 2, "screening must leave the clean rows out"
    assert [f.model_dump() for f in screened] == [f.model_dump() for f in full]
    checks = {f.check for f in full}
    assert {"wrong_source", "wrong_anchor", "ledger_mismatch", "control_plane_drift",
            "duplicate_charge", "missing_usage"} <= checks


def test_partition_is_disjoint_and_covers_every_instance() -> None:
    from bot.sources.billing_args import partition as _partition

    ids = [f"ai-{n:03d}" for n in range(250)] + ["ai-007", "ai-100"]  # repeats
    parts = _partition(ids, 2, 100)
    assert len(parts) == 2
    flat = [i for p in parts for i in p]
    assert sorted(flat) == sorted(set(ids))  # every instance once
    assert _partition(ids, 3, 100) == parts  # at least 100 each: two parts
    assert _partition(ids[:150], 2, 100) == [ids[:150]]  # too few to split
    assert _partition(ids, 1, 1) == [ids]
    assert [len(p) for p in _partition(ids, 4, 10)] == [63, 63, 63, 61]


async def test_split_screening_and_events_shared_across_instances(
    fresh_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The screening split over concurrent queries (disjoint sets of instances) finds
    what the full path finds, also when rows of two instances share a source_event_id:
    the checks group duplicates per instance, so such rows are no rule 7 group (and are
    not suspects for it), in whichever part their instances are screened."""
    import bot.sources.billing as billing

    spec = ScenarioSpec.grid(
        orgs=3, projects_per_org=2, instances_per_project=3,
        injections=every_injection(alternate_hours=True), correct_cases=ALL_CORRECT_CASES,
    )
    platform = build_platform(spec, now=NOW, seed=7)
    window = platform.window(7)
    ids = [i.app_instance_id for i in platform.instances]
    conn = await asyncpg.connect(fresh_database)
    try:
        await load_billing(conn, platform, replace=True)
        async with PostgresBillingReader(fresh_database, 10_000) as reader:
            whole = (await reader.screen_usage(ids, window)).items
            one = {u.usage_record_id for u in whole if isinstance(u, UsageRecord)}
        # two clean rows of two instances (screened in different parts) share an event
        a, b = await conn.fetch(
            """select distinct on (app_instance_id) usage_record_id, source_event_id
               from billing.usage_records
               where app_instance_id in ($1, $2) and period_start >= $3 and period_start < $4
                 and not usage_record_id = any($5::text[])
               order by app_instance_id, period_start""",
            ids[0], ids[-1], window.start, window.end, sorted(one))
        await conn.execute("update billing.usage_records set source_event_id = $1 "
                           "where usage_record_id = $2", a["source_event_id"], b["usage_record_id"])
    finally:
        await conn.close()
    monkeypatch.setattr(billing, "SCREEN_PARTS", 3)
    monkeypatch.setattr(billing, "SCREEN_PART_MIN", 2)
    async with PostgresBillingReader(fresh_database, 10_000, max_size=4) as reader:
        full = await full_findings(reader, platform.instances, window, platform.now)
        screened, _ = await screened_findings(reader, platform.instances, window, platform.now)
        split = await reader.screen_usage(ids, window)
    assert split.call.params["parts"] == 3
    got = [u.usage_record_id for u in split.items if isinstance(u, UsageRecord)]
    credits = [e.ledger_entry_id for e in split.items if isinstance(e, LedgerEntry)]
    assert credits and len(credits) == len(set(credits))  # a project two parts share: its entries once
    assert set(credits) == {e.ledger_entry_id for e in whole if isinstance(e, LedgerEntry)}
    assert len(got) == len(set(got)) and set(got) == one  # the same rows, each once
    assert not {a["usage_record_id"], b["usage_record_id"]} & set(got)
    assert [f.model_dump() for f in screened] == [f.model_dump() for f in full]
    for f in full:
        assert not {a["usage_record_id"], b["usage_record_id"]} & set(f.usage_record_ids)


async def test_a_debit_reversed_by_a_credit_named_for_another_row_is_screened(fresh_database: str) -> None:
    """Hostile ledger: a reversal credit posted in another org's project names row X (its
    usage_record_id) but reverses row Y's debit. The project walk never sees it; it is found
    only through X. Y's debit is then no longer a charge, so Y must be a suspect, and the
    screened findings must still equal the full path's."""
    spec = ScenarioSpec.grid(
        orgs=3, projects_per_org=2, instances_per_project=3,
        injections=every_injection(alternate_hours=True), correct_cases=ALL_CORRECT_CASES,
    )
    platform = build_platform(spec, now=NOW, seed=11)
    window = platform.window(7)
    mine = [i for i in platform.instances if i.org_id == platform.instances[0].org_id]
    other = next(i for i in platform.instances if i.org_id != mine[0].org_id)
    ids = [i.app_instance_id for i in mine]
    conn = await asyncpg.connect(fresh_database)
    try:
        await load_billing(conn, platform, replace=True)
        async with PostgresBillingReader(fresh_database, 10_000) as reader:
            before = sorted(u.usage_record_id for u in (await reader.screen_usage(ids, window)).items
                            if isinstance(u, UsageRecord))
        # two clean rows of one instance, each with its one usage debit
        x, y = await conn.fetch(
            """select u.usage_record_id, l.ledger_entry_id, l.amount_minor, l.currency
               from billing.usage_records u
               join billing.ledger_entries l on l.usage_record_id = u.usage_record_id and l.kind = 'usage'
               where u.app_instance_id = any($1::text[]) and u.period_start >= $2 and u.period_start < $3
                 and not u.usage_record_id = any($4::text[])
               order by u.app_instance_id, u.period_start, u.usage_record_id limit 2""",
            ids, window.start, window.end, before)
        await conn.execute(
            """insert into billing.ledger_entries (ledger_entry_id, org_id, project_id, usage_record_id,
                   direction, kind, amount_minor, currency, reverses_entry_id, idempotency_key, posted_at)
               values ('le-hostile-reversal', $1, $2, $3, 'credit', 'reversal', $4, $5, $6,
                       'hostile:1', $7)""",
            other.org_id, other.project_id, x["usage_record_id"], y["amount_minor"], y["currency"],
            y["ledger_entry_id"], window.end)
    finally:
        await conn.close()
    async with PostgresBillingReader(fresh_database, 10_000) as reader:
        got = {u.usage_record_id for u in (await reader.screen_usage(ids, window)).items
               if isinstance(u, UsageRecord)}
        full = await full_findings(reader, mine, window, platform.now)
        screened, _ = await screened_findings(reader, mine, window, platform.now)
    assert {x["usage_record_id"], y["usage_record_id"]} <= got
    assert any(y["usage_record_id"] in f.usage_record_ids for f in full)
    assert [f.model_dump() for f in screened] == [f.model_dump() for f in full]
