"""PostgresBillingReader against a real PostgreSQL.

The server is the session's (``pg_server_url`` in tests/conftest.py); this module
creates and drops its own database there. The billing schema is
``bot/contract/billing_schema.sql``; the rows are inserted by hand below.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from importlib import resources
from typing import Any

import asyncpg
import pytest

from bot.diagnosis.model import (
    AppInstance,
    BillingAccount,
    Component,
    LedgerEntry,
    RateCard,
    UsageRecord,
    Window,
)
from bot.errors import SourceError, SourceUnavailable
from bot.sources.billing import QUERIES, PostgresBillingReader, floor_hour
from bot.sources.protocols import Coverage, KnownCredits, hidden_gaps, split_screened
from bot.store.db import with_database
from tests.constants import H

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)  # this file's own clock: its rows are written by hand below


def h(n: float) -> datetime:
    return T0 + n * H


# ------------------------------------------------------------------ server and data


SCHEMA = resources.files("bot.contract").joinpath("billing_schema.sql").read_text("utf-8")

INSTANCES = [
    # id, org, project, kind, mode, scope, backend, allocation, status, started, stopped
    ("ai-1", "org-a", "prj-1", "ray_cluster", "managed", "dedicated", "ray", None,
     "running", h(-10), None),
    ("ai-2", "org-a", "prj-1", "notebook", "on_allocation", "shared", "kubernetes", "alloc-7",
     "stopped", h(-48), h(-24)),
    ("ai-3", "org-a", "prj-2", "inference_endpoint", "managed", "shared", "slurm", None,
     "stopped", h(-5), h(-3)),
    ("ai-4", "org-b", "prj-9", "ray_cluster", "managed", "dedicated", "ray", None,
     "running", h(-100), None),
    ("ai-5", "org-a", "prj-1", "notebook", "managed", "shared", "kubernetes", None,
     "provisioning", None, None),
]
COMPONENTS = [
    ("ai-1", "ray-head", True, "cpu.standard"),
    ("ai-1", "ray-worker", False, "gpu.h100"),
    ("ai-2", "worker", False, "gpu.a100"),
    ("ai-4", "ray-head", True, "cpu.standard"),
]


def _usage(uid: str, inst: str, comp: str, start: datetime, corr: str | None,
           org: str = "org-a", project: str = "prj-1", qty: str = "3600") -> tuple[Any, ...]:
    return (uid, "se-" + uid, org, project, "app_runtime", None, inst, comp,
            comp.endswith("head"), "managed", "dedicated", "ray", "gpu.h100", Decimal(qty),
            "second", start, start + H, corr, "ab" * 16, start + H + timedelta(minutes=3))


USAGE = [
    _usage("ur-1", "ai-1", "ray-worker", h(-3), "corr-1"),
    _usage("ur-2", "ai-1", "ray-worker", h(-2), "corr-1", qty="1800.5"),
    _usage("ur-3", "ai-1", "ray-worker", h(-1), "corr-1"),
    _usage("ur-4", "ai-1", "ray-worker", h(0), "corr-1"),
    _usage("ur-5", "ai-1", "ray-head", h(-2), "corr-1"),
    _usage("ur-6", "ai-2", "worker", h(-30), "corr-2"),
    _usage("ur-7", "ai-4", "ray-head", h(-2), "corr-4", org="org-b", project="prj-9"),
]


def _entry(lid: str, uid: str | None, direction: str, kind: str, amount: int, posted: datetime,
           reverses: str | None = None, corr: str | None = "corr-1", org: str = "org-a",
           project: str = "prj-1") -> tuple[Any, ...]:
    return (lid, org, project, uid, direction, kind, amount, "USD", reverses, "idem-" + lid,
            corr, None, posted)


LEDGER = [
    _entry("le-1", "ur-1", "debit", "usage", 360, h(-1.8)),
    _entry("le-2", "ur-2", "debit", "usage", 180, h(-0.8)),
    # the reversal of le-2 names no usage row; it is found through reverses_entry_id
    _entry("le-2r", None, "credit", "reversal", 180, h(20), reverses="le-2"),
    _entry("le-2p", "ur-2", "debit", "usage", 180, h(20.1)),
    _entry("le-3", "ur-3", "credit", "refund", 50, h(30)),
    _entry("le-6", "ur-6", "debit", "usage", 99, h(-28), corr="corr-2"),
    # reverses an entry of a usage row that is not asked for
    _entry("le-6r", None, "credit", "reversal", 99, h(-27), reverses="le-6", corr="corr-2"),
    # orphan debits: a usage row that does not exist, and no usage row at all
    _entry("le-o1", "ur-gone", "debit", "usage", 360, h(-4), corr=None),
    _entry("le-o2", None, "debit", "usage", 360, h(-2), corr=None),
    # not orphans of the asked scope / window / kind
    _entry("le-o3", "ur-gone-b", "debit", "usage", 360, h(-4), corr=None,
           org="org-b", project="prj-9"),
    _entry("le-o4", "ur-gone-old", "debit", "usage", 360, h(-200), corr=None),
    _entry("le-promo", None, "credit", "promo_credit", 1000, h(-4), corr=None),
    _entry("le-adj", None, "debit", "adjustment", 10, h(-4), corr=None),
    _entry("le-7", "ur-7", "debit", "usage", 360, h(-0.5), corr="corr-4",
           org="org-b", project="prj-9"),
]
ACCOUNTS = [("org-a", "USD"), ("org-b", "EUR")]
RATE_CARDS = [
    ("rc-usd-h100", "gpu.h100", "app_runtime", False, None, "second", 1000, "USD",
     h(-1000), None),
    ("rc-usd-head", "cpu.standard", "app_runtime", True, "dedicated", "second", 50, "USD",
     h(-1000), h(-500)),
    ("rc-eur-h100", "gpu.h100", "app_runtime", False, None, "second", 900, "EUR",
     h(-1000), None),
    ("rc-jpy-h100", "gpu.h100", "app_runtime", False, None, "second", 150000, "JPY",
     h(-1000), None),
]


@pytest.fixture(scope="module")
async def billing_url(pg_server_url: str, pg_admin: asyncpg.Connection[asyncpg.Record]) -> AsyncIterator[str]:
    """This module's database on the session's server, holding the rows above."""
    db = "billing_reader_" + secrets.token_hex(4)
    await pg_admin.execute(f'create database "{db}"')
    url = with_database(pg_server_url, db)
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(SCHEMA)
        for table, rows in (
            ("app_instances", [(*r, h(-200)) for r in INSTANCES]),
            ("app_instance_components", COMPONENTS),
            ("billing_accounts", ACCOUNTS),
            ("rate_cards", RATE_CARDS),
            ("usage_records", USAGE),
            ("ledger_entries", LEDGER),
        ):
            await conn.copy_records_to_table(table, records=rows, schema_name="billing")
    finally:
        await conn.close()
    yield url
    await pg_admin.execute(f'drop database if exists "{db}" with (force)')


@pytest.fixture
async def reader(billing_url: str) -> AsyncIterator[PostgresBillingReader]:
    r = PostgresBillingReader(billing_url, 5000)
    yield r
    await r.aclose()


def _ids(items: list[Any], attr: str) -> list[str]:
    return sorted(getattr(i, attr) for i in items)


# ------------------------------------------------------------------ the queries


async def test_usage_for_instances_window_floors_start_and_excludes_end(
    reader: PostgresBillingReader,
) -> None:
    # start 30 minutes into the T0-2h hour: that hour's rows count; the T0 row starts at
    # the window's end and does not.
    w = Window(h(-2) + timedelta(minutes=30), h(0))
    got = await reader.usage_for_instances(["ai-1", "ai-404"], w)
    assert _ids(got.items, "usage_record_id") == ["ur-2", "ur-3", "ur-5"]
    ur2 = next(u for u in got.items if u.usage_record_id == "ur-2")
    assert ur2 == UsageRecord(*USAGE[1])
    assert isinstance(ur2.quantity, Decimal) and ur2.quantity == Decimal("1800.500000")
    assert ur2.period_start == h(-2) and ur2.period_start.tzinfo is not None
    call = got.call
    assert (call.source, call.kind, call.request, call.via) == (
        "billing", "sql", "usage_for_instances", "postgres")
    assert call.window == w and call.started_at is not None and call.duration_ms > 0
    assert call.params["period_start_from"] == h(-2).isoformat()
    json.dumps(call.params)


async def test_usage_by_correlation_and_by_ids(reader: PostgresBillingReader) -> None:
    got = await reader.usage_by_correlation("corr-1", Window(h(-3), h(1)))
    assert _ids(got.items, "usage_record_id") == ["ur-1", "ur-2", "ur-3", "ur-4", "ur-5"]
    got = await reader.usage_by_correlation("corr-1", Window(h(-1), h(0)))
    assert _ids(got.items, "usage_record_id") == ["ur-3"]
    assert (await reader.usage_by_correlation("nope", Window(h(-99), h(9)))).items == []
    got = await reader.usage_by_ids(["ur-6", "ur-7", "ur-missing"])
    assert _ids(got.items, "usage_record_id") == ["ur-6", "ur-7"]
    assert got.call.request == "usage_by_ids"


async def test_ledger_by_correlation_widens_the_window_by_a_day(
    reader: PostgresBillingReader,
) -> None:
    got = await reader.ledger_by_correlation("corr-1", Window(h(-1), h(0)))
    # posted in [T0-25h, T0+24h): le-3 (posted T0+30h) is out
    assert _ids(got.items, "ledger_entry_id") == ["le-1", "le-2", "le-2p", "le-2r"]
    assert got.call.params["posted_to"] == (h(0) + timedelta(days=1)).isoformat()


async def test_ledger_for_usage_includes_reversals_without_usage_id(
    reader: PostgresBillingReader,
) -> None:
    got = await reader.ledger_for_usage(["ur-1", "ur-2", "ur-3", "ur-nothing"])
    assert _ids(got.items, "ledger_entry_id") == ["le-1", "le-2", "le-2p", "le-2r", "le-3"]
    le2r = next(e for e in got.items if e.ledger_entry_id == "le-2r")
    assert le2r == LedgerEntry(*LEDGER[2])
    assert le2r.usage_record_id is None and le2r.reverses_entry_id == "le-2"
    # ur-6's reversal is found only when ur-6 is asked for
    got = await reader.ledger_for_usage(["ur-6"])
    assert _ids(got.items, "ledger_entry_id") == ["le-6", "le-6r"]
    assert (await reader.ledger_for_usage([])).items == []


async def test_ledger_for_usage_takes_the_credits_it_is_handed_instead_of_reading_them(
    reader: PostgresBillingReader,
) -> None:
    """``known``: the credits of (org-a, prj-1) from a point on are the caller's; the query
    walks the project only up to that point and the answer is the same, le-2r included
    (posted at h(20), reverses le-2 posted at h(-0.8))."""
    ids = ["ur-1", "ur-2", "ur-3", "ur-nothing"]
    whole = _ids((await reader.ledger_for_usage(ids)).items, "ledger_entry_id")
    le2r = LedgerEntry(*LEDGER[2])
    stray = dataclasses.replace(le2r, ledger_entry_id="le-x", reverses_entry_id="le-other")
    early = dataclasses.replace(le2r, ledger_entry_id="le-early", posted_at=h(-1))  # before `since`
    for since, credits in ((h(0), (le2r, stray, early)), (h(-5), (le2r,)), (h(25), ())):
        known = KnownCredits(frozenset({("org-a", "prj-1")}), since, credits)
        got = await reader.ledger_for_usage(ids, known)
        assert _ids(got.items, "ledger_entry_id") == whole, since
        assert got.call.params["credits_known_for"] == 1
    # handed nothing for a stretch it covers, the walk does not read it again (le-2r missing)
    known = KnownCredits(frozenset({("org-a", "prj-1")}), h(0), ())
    assert "le-2r" not in _ids((await reader.ledger_for_usage(ids, known)).items, "ledger_entry_id")
    # another project's credits change nothing of prj-1's walk
    known = KnownCredits(frozenset({("org-a", "prj-2")}), h(0), ())
    assert _ids((await reader.ledger_for_usage(ids, known)).items, "ledger_entry_id") == whole


@pytest.mark.parametrize("with_index", [False, True])
async def test_ledger_for_usage_same_with_and_without_a_reversal_index(
    billing_url: str, with_index: bool
) -> None:
    """One query form, driven through the (org_id, project_id, posted_at) index, or an
    index on reverses_entry_id when the platform has one: the same entries either way."""
    conn = await asyncpg.connect(billing_url)
    try:
        if with_index:
            await conn.execute("create index ledger_reverses_test_idx "
                               "on billing.ledger_entries (reverses_entry_id)")
        await conn.execute("analyze billing.ledger_entries")
        async with PostgresBillingReader(billing_url, 5000) as r:
            got = await r.ledger_for_usage(["ur-1", "ur-2", "ur-3", "ur-nothing"])
            assert _ids(got.items, "ledger_entry_id") == ["le-1", "le-2", "le-2p", "le-2r", "le-3"]
            got = await r.ledger_for_usage(["ur-6"])
            assert _ids(got.items, "ledger_entry_id") == ["le-6", "le-6r"]
        # the planner can drive the reversal lookup through either index (on a table this
        # small both cost about the same: without sequential scans, and with the project
        # index hidden inside a transaction rolled back, it shows the reversal index)
        tx = conn.transaction()
        await tx.start()
        try:
            await conn.execute("set local enable_seqscan = off")
            await conn.execute("set local plan_cache_mode = force_custom_plan")
            if with_index:
                await conn.execute(
                    "drop index billing.ledger_entries_org_id_project_id_posted_at_idx")
            plan = "\n".join(r[0] for r in await conn.fetch(
                "explain (costs off) " + QUERIES["ledger_for_usage"], ["ur-2"], [], [], None))
        finally:
            await tx.rollback()
        used = "reverses_test_idx" if with_index else "org_id_project_id_posted_at_idx"
        assert re.search(rf"Index (Only )?Scan.*{used}", plan), plan
    finally:
        await conn.execute("drop index if exists billing.ledger_reverses_test_idx")
        await conn.close()


async def test_orphan_debits(reader: PostgresBillingReader) -> None:
    w = Window(h(-10), h(0))
    got = await reader.orphan_debits([("org-a", "prj-1"), ("org-a", "prj-1")], w)
    assert _ids(got.items, "ledger_entry_id") == ["le-o1", "le-o2"]
    got = await reader.orphan_debits([("org-a", "prj-1"), ("org-b", "prj-9")], w)
    assert _ids(got.items, "ledger_entry_id") == ["le-o1", "le-o2", "le-o3"]
    # the window bounds posted_at: [T0-10h, T0-3h) still has le-o1 (T0-4h), not le-o2 (T0-2h)
    got = await reader.orphan_debits([("org-a", "prj-1")], Window(h(-10), h(-3)))
    assert _ids(got.items, "ledger_entry_id") == ["le-o1"]
    assert got.call.params == {"org_projects": [["org-a", "prj-1"]], "app_instance_ids": []}
    assert (await reader.orphan_debits([], w)).items == []
    # the instances are a hint for the work, not a filter
    hinted = await reader.orphan_debits([("org-a", "prj-1"), ("org-b", "prj-9")], w, ["ai-1", "ai-2", "ai-404"])
    assert _ids(hinted.items, "ledger_entry_id") == ["le-o1", "le-o2", "le-o3"]
    assert hinted.call.params["app_instance_ids"] == ["ai-1", "ai-2", "ai-404"]


@pytest.mark.parametrize("window", [Window(h(-10), h(0)), Window(h(-10), h(-3)), Window(h(-4.5), h(0)),
                                    Window(h(-3.5), h(0)), Window(h(-1.9), h(-1.5))])
async def test_screened_orphans_are_orphan_debits_of_the_instances_projects(
    reader: PostgresBillingReader, window: Window,
) -> None:
    """The screening's debits without a usage row are orphan_debits' answer for the
    instances' projects, the window's own start included (not the hour it is floored to:
    le-o1 at T0-4h is out of [T0-3.5h, T0), though the rows are read from T0-4h)."""
    got = split_screened((await reader.screen_usage(["ai-1", "ai-2"], window)).items,
                         {("org-a", "prj-1")}, window)
    want = await reader.orphan_debits([("org-a", "prj-1")], window)
    assert _ids(got.orphans, "ledger_entry_id") == _ids(want.items, "ledger_entry_id")
    assert sorted(got.orphans, key=str) == sorted(want.items, key=str)
    assert all(c.direction == "credit" for c in got.credits.credits)


async def test_orphan_debits_are_the_same_with_and_without_the_instances(demo_db: tuple[str, Any]) -> None:
    """Every instance, some, or none as the hint: the same orphans (a debit naming a row of
    a hinted instance is set aside in bulk, any other is looked up on its own)."""
    url, platform = demo_db
    pairs = sorted({(i.org_id, i.project_id) for i in platform.instances})
    ids = [i.app_instance_id for i in platform.instances]
    window = platform.window(7)
    async with PostgresBillingReader(url, 5000) as r:
        answers = [sorted(e.ledger_entry_id for e in (await r.orphan_debits(pairs, window, hint)).items)
                   for hint in (ids, ids[::3], [], ["ai-none"])]
    expected = sorted(set().union(*(e.ledger_entry_ids for e in platform.expected if e.flavour == "orphan_debit")))
    assert expected and answers == [expected] * 4


async def test_instances_in_scope_overlap(reader: PostgresBillingReader) -> None:
    got = await reader.instances_in_scope("org-a", None, Window(h(-6), h(-4)))
    assert _ids(got.items, "app_instance_id") == ["ai-1", "ai-3"]
    assert got.items[0] == AppInstance(*INSTANCES[0])
    got = await reader.instances_in_scope("org-a", "prj-1", Window(h(-6), h(-4)))
    assert _ids(got.items, "app_instance_id") == ["ai-1"]
    # closed run [started, stopped]: ai-2 stopped at T0-24h, exactly the window's start
    got = await reader.instances_in_scope("org-a", "prj-1", Window(h(-24), h(-20)))
    assert _ids(got.items, "app_instance_id") == ["ai-2"]
    # half-open window: ai-3 starting at the window's end is out
    got = await reader.instances_in_scope("org-a", "prj-2", Window(h(-9), h(-5)))
    assert got.items == []
    # running instance (stopped_at null): runs up to now, not beyond
    now = datetime.now(UTC)
    got = await reader.instances_in_scope("org-b", None, Window(now + 10 * H, now + 11 * H))
    assert got.items == []
    got = await reader.instances_in_scope("org-b", None, Window(now - H, now))
    assert _ids(got.items, "app_instance_id") == ["ai-4"]


async def test_small_lookups(reader: PostgresBillingReader) -> None:
    got = await reader.app_instances(["ai-2", "ai-5", "ai-x"])
    assert got.items == [AppInstance(*INSTANCES[1]), AppInstance(*INSTANCES[4])]
    got_c = await reader.components(["ai-1"])
    assert got_c.items == [Component(*c) for c in COMPONENTS[:2]]
    got_a = await reader.billing_accounts(["org-a", "org-b", "org-z"])
    assert got_a.items == [BillingAccount("org-a", "USD"), BillingAccount("org-b", "EUR")]
    got_r = await reader.rate_cards(["USD", "JPY"])
    assert sorted(r.rate_card_id for r in got_r.items) == [
        "rc-jpy-h100", "rc-usd-h100", "rc-usd-head"]
    head = next(r for r in got_r.items if r.rate_card_id == "rc-usd-head")
    assert head == RateCard(*RATE_CARDS[1])
    assert isinstance(head.unit_price_micros, int)


@pytest.mark.parametrize(
    ("name", "cls"),
    [
        ("usage_by_correlation", UsageRecord),
        ("usage_for_instances", UsageRecord),
        ("usage_by_ids", UsageRecord),
        ("ledger_by_correlation", LedgerEntry),
        ("ledger_for_usage", LedgerEntry),
        ("orphan_debits", LedgerEntry),
        ("orphan_debits_by_correlation", LedgerEntry),
        ("usage_hours", Coverage),
        ("app_instances", AppInstance),
        ("instances_in_scope", AppInstance),
        ("components", Component),
        ("billing_accounts", BillingAccount),
        ("rate_cards", RateCard),
    ],
)
async def test_columns_follow_dataclass_fields(billing_url: str, name: str, cls: type) -> None:
    """Rows are mapped positionally: each query's columns are the dataclass's fields."""
    conn = await asyncpg.connect(billing_url)
    try:
        stmt = await conn.prepare(QUERIES[name])
        assert [a.name for a in stmt.get_attributes()] == [
            f.name for f in dataclasses.fields(cls)]
    finally:
        await conn.close()


async def test_screen_usage_columns_are_each_kinds_fields_side_by_side(billing_url: str) -> None:
    """screen_usage's rows: the kind, then UsageRecord's, LedgerEntry's and Coverage's fields."""
    conn = await asyncpg.connect(billing_url)
    try:
        stmt = await conn.prepare(QUERIES["screen_usage"])
        assert [a.name for a in stmt.get_attributes()] == ["kind", *(
            f.name for cls in (UsageRecord, LedgerEntry, Coverage) for f in dataclasses.fields(cls))]
    finally:
        await conn.close()


async def suspect_rows(r: PostgresBillingReader, ids: list[str], window: Window) -> list[UsageRecord]:
    """The rows screen_usage returns."""
    return [x for x in (await r.screen_usage(ids, window)).items if isinstance(x, UsageRecord)]


async def coverage_of(r: PostgresBillingReader, ids: list[str], window: Window) -> list[Coverage]:
    """screen_usage's coverage, by instance and component."""
    return sorted((x for x in (await r.screen_usage(ids, window)).items if isinstance(x, Coverage)),
                  key=lambda c: (c.app_instance_id, c.component))


# ------------------------------------------------------------------ read only, failures


async def test_transactions_are_read_only(reader: PostgresBillingReader) -> None:
    with pytest.raises(SourceError) as e:
        await reader._fetch(
            "write_attempt", "insert into billing.billing_accounts values ('org-x', 'USD')", ())
    assert "read-only transaction" in e.value.reason
    assert (await reader.billing_accounts(["org-x"])).items == []


async def test_statement_timeout_is_a_source_error(billing_url: str) -> None:
    r = PostgresBillingReader(billing_url, 200)
    try:
        with pytest.raises(SourceError) as e:
            await r._fetch("sleep", "select pg_sleep(3)", ())
        assert "statement timeout" in e.value.reason
        # a public query blocked by a lock hits the same timeout
        locker = await asyncpg.connect(billing_url)
        try:
            async with locker.transaction():
                await locker.execute("lock table billing.rate_cards in access exclusive mode")
                with pytest.raises(SourceError, match="statement timeout"):
                    await r.rate_cards(["USD"])
        finally:
            await locker.close()
        # and the reader still works afterwards
        assert len((await r.rate_cards(["USD"])).items) == 2
    finally:
        await r.aclose()


async def test_missing_schema_says_run_the_demo(pg_server_url: str) -> None:
    r = PostgresBillingReader(pg_server_url, 5000)
    try:
        with pytest.raises(SourceError) as e:
            await r.rate_cards(["USD"])
        assert "billing schema not found" in e.value.reason
        assert "recon demo" in e.value.reason
        assert e.value.source == "billing"
    finally:
        await r.aclose()


async def test_unreachable_server_is_unavailable_without_password() -> None:
    r = PostgresBillingReader(
        "postgresql://recon:s3cret-pw@127.0.0.1:1/billing", 5000, connect_timeout_s=2)
    assert r.label == "postgres billing db (127.0.0.1:1/billing)"
    assert "s3cret" not in r.label
    with pytest.raises(SourceUnavailable) as e:
        await r.usage_by_ids(["ur-1"])
    assert e.value.source == "billing"
    assert "s3cret-pw" not in str(e.value)
    await r.aclose()


async def test_closed_pool_and_closed_reader_are_unavailable(billing_url: str) -> None:
    pool = await asyncpg.create_pool(billing_url, min_size=0, max_size=1)
    assert pool is not None
    r = PostgresBillingReader(pool, 5000)
    assert len((await r.billing_accounts(["org-a"])).items) == 1
    await pool.close()
    with pytest.raises(SourceUnavailable):
        await r.billing_accounts(["org-a"])
    await r.aclose()  # not ours: nothing to do

    owned = PostgresBillingReader(billing_url, 5000)
    assert len((await owned.billing_accounts(["org-a"])).items) == 1
    await owned.aclose()
    with pytest.raises(SourceUnavailable):
        await owned.billing_accounts(["org-a"])


def test_floor_hour_is_utc() -> None:
    from datetime import timezone

    ist = timezone(timedelta(hours=5, minutes=30))
    t = datetime(2026, 3, 2, 17, 45, tzinfo=ist)  # 12:15 UTC
    assert floor_hour(t) == datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


# ------------------------------------------------------------------ screening (screen_usage)


@pytest.fixture
async def demo_db(fresh_database: str) -> AsyncIterator[tuple[str, Any]]:
    """The demo platform (every injection flavour, every correct case) in a fresh database."""
    from bot.scenario import build_platform, demo_spec
    from bot.scenario.load import load_billing

    platform = build_platform(demo_spec(), now=datetime(2026, 3, 2, 12, 30, tzinfo=UTC), seed=11)
    conn = await asyncpg.connect(fresh_database)
    try:
        await load_billing(conn, platform, replace=True)
    finally:
        await conn.close()
    yield fresh_database, platform


async def test_screen_usage_returns_every_drifted_row_and_no_clean_one(
    demo_db: tuple[str, Any],
) -> None:
    url, platform = demo_db
    ids = [i.app_instance_id for i in platform.instances]
    async with PostgresBillingReader(url, 5000) as r:
        got = await r.screen_usage(ids, platform.window(7))
    suspects = {u.usage_record_id for u in got.items if isinstance(u, UsageRecord)}
    assert got.call.request == "screen_usage"
    for e in platform.expected:
        if e.check == "missing_usage" or e.flavour == "orphan_debit":
            continue  # no row to return
        assert e.usage_record_ids <= suspects, (e.check, e.flavour)
    drifted = set().union(*(e.usage_record_ids for e in platform.expected))
    reversed_dups = set().union(*(c.usage_record_ids for c in platform.correct_cases
                                  if c.kind == "duplicate_reversed"))
    assert reversed_dups and reversed_dups <= suspects  # a rule 7 group: every member
    # nothing else: clean rows (ties, card changes, JPY, credits...) stay out
    assert suspects - drifted - reversed_dups == set()
    # the rows come whole, as usage_for_instances gives them
    full = {u.usage_record_id: u for u in (await _all_usage(url, ids, platform)).items}
    assert all(full[u.usage_record_id] == u for u in got.items if isinstance(u, UsageRecord))


async def _all_usage(url: str, ids: list[str], platform: Any) -> Any:
    async with PostgresBillingReader(url, 5000) as r:
        return await r.usage_for_instances(ids, platform.window(7))


async def test_half_even_tie_is_clean_until_off_by_one(demo_db: tuple[str, Any]) -> None:
    url, platform = demo_db
    tie = next(c for c in platform.correct_cases if c.kind == "half_even_tie")
    (row,) = tie.usage_record_ids
    aid = tie.app_instance_id
    async with PostgresBillingReader(url, 5000) as r:
        assert row not in {u.usage_record_id for u in await suspect_rows(r, [aid], platform.window(7))}
        conn = await asyncpg.connect(url)
        try:
            await conn.execute("update billing.ledger_entries set amount_minor = amount_minor + 1 "
                               "where usage_record_id = $1 and kind = 'usage'", row)
        finally:
            await conn.close()
        assert row in {u.usage_record_id for u in await suspect_rows(r, [aid], platform.window(7))}


async def test_full_hour_rows_are_priced_exactly_at_a_tie(demo_db: tuple[str, Any]) -> None:
    """A row of 3,600 seconds is compared with its key's full-hour amount (rounded once per
    key): at a JPY price of 1,250 micros an hour is 4.5 yen, so 4 is right (half to even)
    and 5 or 3 is returned, exactly as the per-row numeric test decides."""
    url, platform = demo_db
    drifted = set().union(*(e.usage_record_ids for e in platform.expected))
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            """select u.usage_record_id, u.app_instance_id, u.resource_class, u.usage_source, u.control_plane_component
               from billing.usage_records u
               join billing.billing_accounts b on b.org_id = u.org_id and b.currency = 'JPY'
               where u.quantity = 3600 and u.period_start >= $1 and u.usage_record_id <> all($2::text[])
               order by u.usage_record_id""", platform.window(7).start, sorted(drifted))
        aid = rows[0]["app_instance_id"]
        mine = [r for r in rows if r["app_instance_id"] == aid and r["resource_class"] == rows[0]["resource_class"]
                and r["usage_source"] == rows[0]["usage_source"]
                and r["control_plane_component"] == rows[0]["control_plane_component"]][:3]
        assert len(mine) == 3
        await conn.execute("update billing.rate_cards set unit_price_micros = 1250 where currency = 'JPY' "
                           "and resource_class = $1 and usage_source = $2 and control_plane = $3",
                           mine[0]["resource_class"], mine[0]["usage_source"], mine[0]["control_plane_component"])
        for row, amount in zip(mine, (4, 5, 3), strict=True):
            await conn.execute("update billing.ledger_entries set amount_minor = $2 "
                               "where usage_record_id = $1 and kind = 'usage'", row["usage_record_id"], amount)
    finally:
        await conn.close()
    async with PostgresBillingReader(url, 5000) as r:
        got = {u.usage_record_id for u in await suspect_rows(r, [aid], platform.window(7))}
    right, high, low = (row["usage_record_id"] for row in mine)
    assert right not in got
    assert {high, low} <= got


async def test_reversed_duplicate_is_returned_but_reports_nothing(demo_db: tuple[str, Any]) -> None:
    from bot.diagnosis.checks import BillingEvidence, run_checks

    url, platform = demo_db
    case = next(c for c in platform.correct_cases if c.kind == "duplicate_reversed")
    aid = case.app_instance_id
    async with PostgresBillingReader(url, 5000) as r:
        members = [u for u in await suspect_rows(r, [aid], platform.window(7))
                   if u.usage_record_id in case.usage_record_ids]
        assert len(members) == len(case.usage_record_ids) >= 2
        ledger = await r.ledger_for_usage([u.usage_record_id for u in members])
        inst = await r.app_instances([aid])
        comps = await r.components([aid])
        accounts = await r.billing_accounts([inst.items[0].org_id])
        cards = await r.rate_cards([a.currency for a in accounts.items])
    findings = run_checks(BillingEvidence(
        window=platform.window(7), now=platform.now, instances=inst.items, components=comps.items,
        usage=members, ledger=ledger.items, accounts=accounts.items, rate_cards=cards.items,
        logs=[], logs_available=False, covered={},
    ), ["duplicate_charge", "ledger_mismatch", "wrong_source", "wrong_anchor", "control_plane_drift"])
    assert findings == []


async def test_jpy_and_rate_card_change_rows_are_clean(demo_db: tuple[str, Any]) -> None:
    url, platform = demo_db
    jpy = [i.app_instance_id for i in platform.instances
           if next(a for a in platform.accounts if a.org_id == i.org_id).currency == "JPY"]
    change = next(c for c in platform.correct_cases if c.kind == "rate_card_change")
    drifted = set().union(*(e.usage_record_ids for e in platform.expected))
    async with PostgresBillingReader(url, 5000) as r:
        got = await suspect_rows(r, [*jpy, change.app_instance_id], platform.window(7))
    assert jpy and {u.usage_record_id for u in got} <= drifted | set().union(
        *(c.usage_record_ids for c in platform.correct_cases if c.kind == "duplicate_reversed"))


async def test_screened_coverage_and_orphans_by_correlation(reader: PostgresBillingReader) -> None:
    got = await coverage_of(reader, ["ai-1", "ai-404"], Window(h(-3), h(1)))
    assert [(c.app_instance_id, c.component, c.rows) for c in got] == [
        ("ai-1", "ray-head", 1), ("ai-1", "ray-worker", 4)]
    assert got[1].hours is None  # every hour from the first to the last: two timestamps
    assert (got[1].first_hour, got[1].last_hour) == (h(-3), h(0))
    assert [x in got[1].covered() for x in (h(-4), h(-3), h(-1), h(0), h(1), h(-0.5))] == [
        False, True, True, True, False, False]
    o = await reader.orphan_debits_by_correlation(["corr-1", "corr-2"], Window(h(-10), h(0)))
    assert o.items == []  # the fixture's orphans carry no correlation id
    o = await reader.orphan_debits_by_correlation(["corr-1"], Window(h(-30), h(-20)))
    assert o.call.params["posted_from"] == (h(-30) - timedelta(days=1)).isoformat()



class _CancelOnce(asyncpg.Connection):  # type: ignore[type-arg]
    """A connection that cancels the task using it while the statement starting with
    ``_CancelOnce.at`` is on its way to the server: sent, its answer not yet read."""

    at: str | None = None

    def _cancel_here(self, query: str) -> None:
        if _CancelOnce.at and query.lstrip().lower().startswith(_CancelOnce.at):
            _CancelOnce.at = None
            task = asyncio.current_task()
            assert task is not None
            asyncio.get_running_loop().call_soon(task.cancel)

    async def execute(self, query: str, *args: Any, **kw: Any) -> str:
        self._cancel_here(query)
        return await super().execute(query, *args, **kw)

    async def fetch(self, query: str, *args: Any, **kw: Any) -> list[Any]:
        self._cancel_here(query)
        return await super().fetch(query, *args, **kw)


@pytest.mark.parametrize("at", ["begin", "select", "commit"])
async def test_a_read_cancelled_at_any_step_hands_back_no_open_transaction(billing_url: str, at: str) -> None:
    """Cancelled in BEGIN, mid-query or in COMMIT (the export cancels its ledger read when the
    file turns out bad): the connection never goes back to the pool inside a transaction,
    which asyncpg reports as an error on reset, and the reader still serves."""
    loop = asyncio.get_running_loop()
    reported: list[str] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, ctx: reported.append(str(ctx.get("message"))))
    pool = await asyncpg.create_pool(billing_url, min_size=1, max_size=1, connection_class=_CancelOnce)
    r = PostgresBillingReader(pool, 5000)
    try:
        _CancelOnce.at = at
        with pytest.raises(asyncio.CancelledError):
            async with r._session("cancelled") as conn:
                await conn.fetch("select 1")
        assert _CancelOnce.at is None, "the statement was never sent"
        assert len((await r.billing_accounts(["org-a"])).items) == 1
        assert reported == []
    finally:
        _CancelOnce.at = None
        loop.set_exception_handler(previous)
        await pool.close()


async def test_coverage_lists_hours_only_where_a_run_of_hours_does_not_describe_them(
        demo_db: tuple[str, Any]) -> None:
    """A component with one row per hour from the first to the last comes back as two
    timestamps; a missing hour, a period_start off the top of the hour, or two rows of one
    hour that leave as many rows as hours are told exactly (listed by screen_usage, or,
    the last, found by hidden_gaps from the screened rows and listed by usage_hours)."""
    url, platform = demo_db
    ids = [i.app_instance_id for i in platform.instances]
    window = platform.window(7)
    async with PostgresBillingReader(url, 5000) as r:
        before = await coverage_of(r, ids, window)
    runs = [c for c in before if c.hours is None and c.rows >= 5]
    assert len(runs) >= 4
    gap, off, dup, hidden = runs[:4]

    def mid(c: Any) -> datetime:
        t: datetime = c.first_hour + (c.last_hour - c.first_hour) // 2
        return t - timedelta(minutes=t.minute)

    conn = await asyncpg.connect(url)
    try:
        async def one(c: Any, at: datetime) -> str:
            uid: str = await conn.fetchval(
                "select usage_record_id from billing.usage_records where app_instance_id = $1 "
                "and component = $2 and period_start = $3", c.app_instance_id, c.component, at)
            return uid

        async def move(c: Any, at: datetime, to: datetime) -> None:
            await conn.execute("update billing.usage_records set period_start = $2 where usage_record_id = $1",
                               await one(c, at), to)
        gap_uid = await one(gap, mid(gap))
        await conn.execute("delete from billing.ledger_entries where usage_record_id = $1", gap_uid)
        await conn.execute("delete from billing.usage_records where usage_record_id = $1", gap_uid)
        await move(off, off.last_hour, off.last_hour + timedelta(minutes=30))
        await move(dup, dup.last_hour, dup.first_hour)  # the last hour gone, the first one twice
        await move(hidden, mid(hidden), hidden.first_hour)  # an hour inside the run gone, rows as many as hours
    finally:
        await conn.close()
    async with PostgresBillingReader(url, 5000) as r:
        got = await coverage_of(r, ids, window)
        suspects = await suspect_rows(r, ids, window)
        gaps = hidden_gaps(got, suspects)
        exact = (await r.usage_hours(gaps, window)).items
    after = {(c.app_instance_id, c.component): c for c in got}
    g = after[(gap.app_instance_id, gap.component)]
    assert g.hours is not None and mid(gap) not in g.hours and len(g.hours) == g.rows == gap.rows - 1
    assert mid(gap) not in g.covered() and gap.first_hour in g.covered()
    o = after[(off.app_instance_id, off.component)]
    assert o.hours is not None and o.hours[-1] == off.last_hour + timedelta(minutes=30)
    assert off.last_hour not in o.covered()
    d = after[(dup.app_instance_id, dup.component)]
    assert d.rows == dup.rows and d.hours is not None and len(d.hours) == dup.rows - 1
    assert dup.last_hour not in d.covered()
    h = after[(hidden.app_instance_id, hidden.component)]
    assert h.hours is None and mid(hidden) in h.covered()  # the run alone cannot tell
    assert gaps == [(hidden.app_instance_id, hidden.component)]
    assert [(c.app_instance_id, c.component, c.rows) for c in exact] == [
        (hidden.app_instance_id, hidden.component, hidden.rows)]
    assert exact[0].hours is not None and mid(hidden) not in exact[0].covered()
    assert len(exact[0].hours) == hidden.rows - 1 and exact[0].hours[0] == hidden.first_hour
    untouched = [c for c in before if c not in (gap, off, dup, hidden)]
    assert all(after[(c.app_instance_id, c.component)] == c for c in untouched)
