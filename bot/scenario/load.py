"""Load a scenario ``Platform`` into a PostgreSQL billing database.

``load_billing(conn, platform)`` runs ``bot/contract/billing_schema.sql`` (unless
``create_schema=False``; with ``replace=True`` the ``billing`` schema is dropped first)
and bulk-inserts every table with ``COPY`` (``copy_records_to_table``), in foreign-key
order: accounts, rate cards, app instances, components, usage rows, then ledger entries
with every reversed entry before the reversal that names it. All in one transaction.
``build_and_load`` builds the platform and loads it in one call.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from importlib import resources
from typing import Any

import asyncpg

from bot.diagnosis.model import LedgerEntry
from bot.scenario.demo import demo_spec
from bot.scenario.generate import build_platform
from bot.scenario.platform import Platform
from bot.scenario.spec import ScenarioSpec

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


_COLUMNS: dict[str, list[str]] = {
    "billing_accounts": ["org_id", "currency"],
    "rate_cards": ["rate_card_id", "resource_class", "usage_source", "control_plane", "control_plane_scope",
                   "unit", "unit_price_micros", "currency", "effective_from", "effective_to"],
    "app_instances": ["app_instance_id", "org_id", "project_id", "app_kind", "operating_mode",
                      "control_plane_scope", "runtime_backend", "allocation_id", "status", "started_at",
                      "stopped_at"],
    "app_instance_components": ["app_instance_id", "component", "control_plane", "resource_class"],
    "usage_records": ["usage_record_id", "source_event_id", "org_id", "project_id", "usage_source",
                      "allocation_id", "app_instance_id", "component", "control_plane_component",
                      "operating_mode", "control_plane_scope", "runtime_backend", "resource_class",
                      "quantity", "unit", "period_start", "period_end", "correlation_id", "trace_id",
                      "recorded_at"],
    "ledger_entries": ["ledger_entry_id", "org_id", "project_id", "usage_record_id", "direction", "kind",
                       "amount_minor", "currency", "reverses_entry_id", "idempotency_key",
                       "correlation_id", "description", "posted_at"],
}


def _records(platform: Platform) -> list[tuple[str, list[str], list[tuple[Any, ...]]]]:
    """Each table's columns and rows, in foreign-key order; a column is the field of that name."""
    p = platform

    def table(name: str, items: Iterable[object]) -> tuple[str, list[str], list[tuple[Any, ...]]]:
        cols = _COLUMNS[name]
        return name, cols, [tuple(getattr(x, c) for c in cols) for x in items]

    cols = _COLUMNS["app_instances"]
    instances = ("app_instances", [*cols, "created_at"], [
        (*(getattr(i, c) for c in cols), p.created_at.get(i.app_instance_id) or i.started_at or p.now)
        for i in p.instances
    ])
    return [
        table("billing_accounts", p.accounts),
        table("rate_cards", p.rate_cards),
        instances,
        table("app_instance_components", p.components),
        table("usage_records", p.usage),
        table("ledger_entries", _ledger_in_fk_order(p.ledger)),
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
