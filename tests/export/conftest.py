"""A small billing database for the export tests: one org (USD) in two projects, three app
instances, usage debits, a reversal, a refund and a promo credit in November 2026, one
entry in October; a second org whose entries must never count."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from importlib import resources
from typing import Any

import asyncpg
import pytest_asyncio

from bot.export.sample import write_export
from bot.sources.billing import PostgresBillingReader

SCHEMA = resources.files("bot.contract").joinpath("billing_schema.sql").read_text("utf-8")
T0 = datetime(2026, 11, 3, 4, 0, tzinfo=UTC)
H = timedelta(hours=1)
ORG = "org-acme"
# a component name that needs RFC 4180 quoting: a comma, quotes and a newline
ODD = 'ray-"head",\nprimary'


def usage(uid: str, aid: str, comp: str, n: int, source: str = "app_runtime", project: str = "prj-1",
          cp: bool = False, org: str = ORG) -> tuple[Any, ...]:
    start = T0 + n * H
    return (uid, "se-" + uid, org, project, source, None, aid, comp, cp, "managed", "dedicated", "ray",
            "gpu.h100", Decimal("3600.000000"), "second", start, start + H, "corr-1", "ab" * 16)


def entry(eid: str, uid: str | None, amount: int, kind: str = "usage", direction: str = "debit",
          project: str = "prj-1", posted: datetime | None = None, reverses: str | None = None,
          org: str = ORG) -> tuple[Any, ...]:
    return (eid, org, project, uid, direction, kind, amount, "USD", reverses, "idem-" + eid, "corr-1",
            posted or T0 + 2 * H)


USAGE = [
    usage("ur-1", "ai-1", "ray-worker", 0),
    usage("ur-2", "ai-1", "ray-worker", 1),
    usage("ur-3", "ai-1", ODD, 0, cp=True),
    usage("ur-4", "ai-2", "worker", 0, project="prj-2"),
    # a row that is itself wrong (rule 1: ai-3 is managed, stored as allocation): the
    # export shows it as stored, which is faithful
    usage("ur-5", "ai-3", "worker", 0, source="allocation"),
    usage("ur-9", "ai-9", "worker", 0, org="org-other", project="prj-o"),
]
LEDGER = [
    entry("le-1", "ur-1", 1200),
    entry("le-2", "ur-2", 1200),
    entry("le-3", "ur-3", 300),
    entry("le-4", "ur-4", 900, project="prj-2"),
    entry("le-5", "ur-5", 500),
    entry("le-6", "ur-2", 1200, kind="reversal", direction="credit", reverses="le-2"),
    entry("le-7", None, 250, kind="refund", direction="credit"),
    entry("le-8", None, 100, kind="promo_credit", direction="credit", project="prj-2"),
    entry("le-0", None, 777, kind="adjustment", posted=datetime(2026, 10, 31, 23, 59, tzinfo=UTC)),
    entry("le-9", "ur-9", 4000, org="org-other", project="prj-o"),
]


@pytest_asyncio.fixture
async def billing(fresh_database: str) -> AsyncIterator[PostgresBillingReader]:
    conn = await asyncpg.connect(fresh_database)
    try:
        await conn.execute(SCHEMA)
        await conn.executemany(
            "insert into billing.usage_records (usage_record_id, source_event_id, org_id, project_id, usage_source,"
            " allocation_id, app_instance_id, component, control_plane_component, operating_mode,"
            " control_plane_scope, runtime_backend, resource_class, quantity, unit, period_start, period_end,"
            " correlation_id, trace_id) values ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19)",
            USAGE)
        await conn.executemany(
            "insert into billing.ledger_entries (ledger_entry_id, org_id, project_id, usage_record_id, direction,"
            " kind, amount_minor, currency, reverses_entry_id, idempotency_key, correlation_id, posted_at)"
            " values ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12)",
            # a reversal names its debit: insert the debits first
            sorted(LEDGER, key=lambda e: e[8] is not None))
    finally:
        await conn.close()
    reader = PostgresBillingReader(fresh_database, 15_000)
    try:
        yield reader
    finally:
        await reader.aclose()


async def faithful_csv(billing: PostgresBillingReader, months: tuple[str, ...] = ("2026-11",),
                       project: str | None = None) -> str:
    out = io.StringIO(newline="")
    await write_export(billing, out, ORG, months, project)
    return out.getvalue()
