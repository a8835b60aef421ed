"""The proposed corrections, applied to the ledger, leave it right (platform.md,
"Proposed corrections"): every component-hour of every examined instance that has a
usage row is charged exactly once, at the rule 5 price under the correct attribution, in
the instance's own org and project; every debit whose usage row does not exist is
reversed.

recon never writes billing data: the TEST posts the proposed entries as ledger rows, in
its own throwaway copy of the billing database, as the approved procedure would.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta

import asyncpg

from bot.diagnosis.model import Correction, Subject, Window
from bot.diagnosis.money import Pricer
from bot.flows.diagnosis import SourceSet, diagnose
from bot.scenario import Platform
from bot.sources.billing import PostgresBillingReader
from bot.sources.offline import OfflineEvidence
from tests.conftest import LoadedPlatform
from tests.constants import NOW

WINDOW = Window(NOW - timedelta(days=7), NOW)


async def corrections_of(loaded: LoadedPlatform, subject: Subject,
                         org_scope: tuple[str, str | None] | None = None) -> tuple[list[Correction], set[str]]:
    """The proposed corrections of one diagnosis, and the instances it examined."""
    evidence = OfflineEvidence(loaded.evidence)
    reader = PostgresBillingReader(loaded.billing_url, statement_timeout_ms=10_000)
    try:
        outcome = await diagnose(subject, WINDOW, NOW, SourceSet(evidence.logs, evidence.traces, reader),
                                 org_scope=org_scope)
    finally:
        await reader.aclose()
    return outcome.diagnosis.corrections, set(outcome.diagnosis.identifiers.app_instance_ids)


async def post(conn: asyncpg.Connection[asyncpg.Record], corrections: list[Correction], tag: str) -> None:
    """What the approved procedure does with the proposal: append each entry, in order."""
    for n, c in enumerate(corrections):
        debit = c.action == "post_debit"
        await conn.execute(
            "insert into billing.ledger_entries (ledger_entry_id, org_id, project_id, usage_record_id, direction,"
            " kind, amount_minor, currency, reverses_entry_id, idempotency_key, correlation_id, description,"
            " posted_at) values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
            f"fix-{tag}-{n}", c.org_id, c.project_id, c.usage_record_id if debit else None,
            "debit" if debit else "credit", "usage" if debit else "reversal", c.amount_minor, c.currency,
            c.reverses_entry_id, f"fix-{tag}-{n}", c.correlation_id, c.reason, NOW)


def correct_price(p: Platform, pricer: Pricer, row: asyncpg.Record) -> int | None:
    """Rule 5 under rules 1 to 3: the instance's source, control-plane flag and scope."""
    inst = next(i for i in p.instances if i.app_instance_id == row["app_instance_id"])
    comp = next(c for c in p.components if c.app_instance_id == inst.app_instance_id
                and c.component == row["component"])
    source = "app_runtime" if inst.operating_mode == "managed" or comp.control_plane else "allocation"
    currency = next(a.currency for a in p.accounts if a.org_id == inst.org_id)
    return pricer.price(currency, row["resource_class"], source, comp.control_plane, inst.control_plane_scope,
                        row["period_start"], row["quantity"])


async def assert_ledger_right(conn: asyncpg.Connection[asyncpg.Record], p: Platform, examined: set[str],
                              calls: set[str] | None = None) -> int:
    """The ledger after the corrections; the number of component-hours checked. Debits
    without a row: of the given calls (a correlation diagnosis), else all (every org)."""
    first_hour = WINDOW.start.replace(minute=0, second=0, microsecond=0)
    rows = await conn.fetch("select * from billing.usage_records where app_instance_id = any($1)"
                            " and period_start >= $2", sorted(examined), first_hour)
    entries = await conn.fetch("select * from billing.ledger_entries")
    reversed_ids = {e["reverses_entry_id"] for e in entries if e["kind"] == "reversal"}
    live: dict[str, list[asyncpg.Record]] = defaultdict(list)
    for e in entries:
        if e["kind"] == "usage" and e["direction"] == "debit" and e["ledger_entry_id"] not in reversed_ids:
            live[e["usage_record_id"]].append(e)
    hours: dict[tuple[str, str, datetime], list[asyncpg.Record]] = defaultdict(list)
    for r in rows:
        hours[(r["app_instance_id"], r["component"], r["period_start"])].append(r)
    pricer = Pricer(p.rate_cards)
    instances = {i.app_instance_id: i for i in p.instances}
    for key, its_rows in hours.items():
        inst = instances[key[0]]
        debits = [(r, d) for r in its_rows for d in live[r["usage_record_id"]]]
        assert len(debits) == 1, (key, [d["ledger_entry_id"] for _, d in debits])
        row, debit = debits[0]
        assert debit["amount_minor"] == correct_price(p, pricer, row), key
        assert (debit["org_id"], debit["project_id"]) == (inst.org_id, inst.project_id), key
    existing = {r["usage_record_id"] for r in await conn.fetch("select usage_record_id from billing.usage_records")}
    orphans = [d for ds in live.values() for d in ds if d["usage_record_id"] not in existing
               and (calls is None or d["correlation_id"] in calls)]
    assert orphans == []
    return len(hours)


async def moved_to_own_project(conn: asyncpg.Connection[asyncpg.Record], fixes: list[Correction]) -> int:
    """New debits posted in another project than the one their usage row was recorded in."""
    recorded = {r["usage_record_id"]: r["project_id"] for r in await conn.fetch(
        "select usage_record_id, project_id from billing.usage_records where usage_record_id = any($1)",
        [c.usage_record_id for c in fixes if c.action == "post_debit"])}
    return sum(1 for c in fixes if c.action == "post_debit" and recorded[c.usage_record_id] != c.project_id)


async def test_the_demo_disputed_call_corrected_is_charged_once_in_the_right_project(
        demo_loaded: LoadedPlatform) -> None:
    p = demo_loaded.platform
    assert p.disputed_correlation_id is not None
    fixes, examined = await corrections_of(demo_loaded, Subject(correlation_id=p.disputed_correlation_id))
    assert fixes
    conn = await asyncpg.connect(demo_loaded.billing_url)
    try:
        await post(conn, fixes, "demo")
        calls = {u.correlation_id for u in p.usage if u.app_instance_id in examined and u.correlation_id}
        assert await assert_ledger_right(conn, p, examined, calls) > 10
    finally:
        await conn.close()


async def test_every_org_of_a_grid_with_every_injection_corrected_is_right(grid_loaded: LoadedPlatform) -> None:
    p = grid_loaded.platform
    conn = await asyncpg.connect(grid_loaded.billing_url)
    try:
        examined: set[str] = set()
        moved = 0
        for org in sorted({i.org_id for i in p.instances}):
            fixes, seen = await corrections_of(grid_loaded, Subject(org_id=org), (org, None))
            assert fixes
            await post(conn, fixes, org)
            moved += await moved_to_own_project(conn, fixes)
            examined |= seen
        assert examined == {i.app_instance_id for i in p.instances}
        calls = {u.correlation_id for u in p.usage if u.app_instance_id in examined and u.correlation_id}
        assert await assert_ledger_right(conn, p, examined, calls) > 100
        assert moved  # a row recorded against the wrong project was charged again in its own
    finally:
        await conn.close()
