"""Load a scenario ``Platform`` into a PostgreSQL billing database.

``load_billing(conn, platform)`` runs ``bot/contract/billing_schema.sql`` (unless
``create_schema=False``; with ``replace=True`` the ``billing`` schema is dropped first)
and bulk-inserts every table with ``COPY`` (``copy_records_to_table``), in foreign-key
order: accounts, rate cards, app instances, components, usage rows, then ledger entries
with every reversed entry before the reversal that names it. All in one transaction.
``build_and_load`` builds the platform and loads it in one call.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from importlib import resources
from typing import Any

import asyncpg

from bot.diagnosis.model import LedgerEntry
from bot.scenario.generate import Platform, ScenarioSpec, build_platform, demo_spec

__all__ = ["billing_schema_sql", "build_and_load", "load_billing"]

SCHEMA = "billing"


def billing_schema_sql() -> str:
    """The billing schema DDL shipped in ``bot.contract``."""
    return resources.files("bot.contract").joinpath("billing_schema.sql").read_text(encoding="utf-8")


def _ledger_in_fk_order(entries: Sequence[LedgerEntry]) -> list[LedgerEntry]:
    """Every entry after the entry it reverses (stable otherwise)."""
    by_id = {e.ledger_entry_id: e for e in entries}
    done: set[str] = set()
    out: list[LedgerEntry] = []

    def visit(e: LedgerEntry, depth: int = 0) -> None:
        if e.ledger_entry_id in done:
            return
        if depth > len(entries):
            raise ValueError(f"reversal cycle at {e.ledger_entry_id}")
        target = by_id.get(e.reverses_entry_id) if e.reverses_entry_id else None
        if target is not None:
            visit(target, depth + 1)
        done.add(e.ledger_entry_id)
        out.append(e)

    for e in entries:
        visit(e)
    return out


def _records(platform: Platform) -> list[tuple[str, list[str], list[tuple[Any, ...]]]]:
    p = platform
    return [
        ("billing_accounts", ["org_id", "currency"], [(a.org_id, a.currency) for a in p.accounts]),
        (
            "rate_cards",
            ["rate_card_id", "resource_class", "usage_source", "control_plane",
             "control_plane_scope", "unit", "unit_price_micros", "currency", "effective_from",
             "effective_to"],
            [
                (c.rate_card_id, c.resource_class, c.usage_source, c.control_plane,
                 c.control_plane_scope, c.unit, c.unit_price_micros, c.currency,
                 c.effective_from, c.effective_to)
                for c in p.rate_cards
            ],
        ),
        (
            "app_instances",
            ["app_instance_id", "org_id", "project_id", "app_kind", "operating_mode",
             "control_plane_scope", "runtime_backend", "allocation_id", "status", "started_at",
             "stopped_at", "created_at"],
            [
                (i.app_instance_id, i.org_id, i.project_id, i.app_kind, i.operating_mode,
                 i.control_plane_scope, i.runtime_backend, i.allocation_id, i.status,
                 i.started_at, i.stopped_at,
                 p.created_at.get(i.app_instance_id) or i.started_at or p.now)
                for i in p.instances
            ],
        ),
        (
            "app_instance_components",
            ["app_instance_id", "component", "control_plane", "resource_class"],
            [(c.app_instance_id, c.component, c.control_plane, c.resource_class)
             for c in p.components],
        ),
        (
            "usage_records",
            ["usage_record_id", "source_event_id", "org_id", "project_id", "usage_source",
             "allocation_id", "app_instance_id", "component", "control_plane_component",
             "operating_mode", "control_plane_scope", "runtime_backend", "resource_class",
             "quantity", "unit", "period_start", "period_end", "correlation_id", "trace_id",
             "recorded_at"],
            [
                (u.usage_record_id, u.source_event_id, u.org_id, u.project_id, u.usage_source,
                 u.allocation_id, u.app_instance_id, u.component, u.control_plane_component,
                 u.operating_mode, u.control_plane_scope, u.runtime_backend, u.resource_class,
                 u.quantity, u.unit, u.period_start, u.period_end, u.correlation_id, u.trace_id,
                 u.recorded_at)
                for u in p.usage
            ],
        ),
        (
            "ledger_entries",
            ["ledger_entry_id", "org_id", "project_id", "usage_record_id", "direction", "kind",
             "amount_minor", "currency", "reverses_entry_id", "idempotency_key",
             "correlation_id", "description", "posted_at"],
            [
                (e.ledger_entry_id, e.org_id, e.project_id, e.usage_record_id, e.direction,
                 e.kind, e.amount_minor, e.currency, e.reverses_entry_id, e.idempotency_key,
                 e.correlation_id, e.description, e.posted_at)
                for e in _ledger_in_fk_order(p.ledger)
            ],
        ),
    ]


async def load_billing(
    conn: asyncpg.Connection,
    platform: Platform,
    *,
    create_schema: bool = True,
    replace: bool = False,
) -> dict[str, int]:
    """Insert the platform's billing tables; returns the row count per table.

    ``create_schema``: run the contract DDL first (it fails if the tables exist: use
    ``replace=True`` to drop the ``billing`` schema, cascading, before).
    """
    counts: dict[str, int] = {}
    async with conn.transaction():
        if replace:
            await conn.execute(f"drop schema if exists {SCHEMA} cascade")
        if create_schema or replace:
            await conn.execute(billing_schema_sql())
        for table, columns, records in _records(platform):
            if records:
                await conn.copy_records_to_table(
                    table, records=records, columns=columns, schema_name=SCHEMA
                )
            counts[table] = len(records)
    return counts


async def build_and_load(
    conn: asyncpg.Connection,
    spec: ScenarioSpec | None = None,
    *,
    now: datetime,
    seed: int,
    create_schema: bool = True,
    replace: bool = True,
) -> Platform:
    """Build ``spec`` (default: the demo) and load it; returns the platform."""
    platform = build_platform(spec or demo_spec(), now=now, seed=seed)
    await load_billing(conn, platform, create_schema=create_schema, replace=replace)
    return platform
