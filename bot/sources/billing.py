"""The billing database reader: ``BillingReader`` over asyncpg, read-only.

Each method runs ONE named query (``bot/sources/sql/<name>.sql``), parameterised, read
only, under a statement timeout, with custom plans (so the planner sees the actual id
arrays). When the reader creates its pool, those are connection settings
(``server_settings``: ``statement_timeout``, ``default_transaction_read_only``,
``plan_cache_mode``, ``work_mem``) and the pool does not reset connections on release,
so a call is ONE round trip (its statement runs in an implicit read-only transaction);
with a caller's pool they are ``SET LOCAL`` in a ``READ ONLY`` transaction opened with
the same simple query (three round trips). A few heavy queries add their own
``SET LOCAL`` planner settings (``_QUERY_SETTINGS``). Rows are mapped the rows positionally onto the model's
dataclasses: every query selects its columns in the dataclass's field order, so a row
becomes ``UsageRecord(*row)`` with no per-field dict work (``quantity`` stays a
``Decimal``, timestamps stay timezone-aware).

Windows:

- usage: rows whose ``period_start`` lies in ``[floor_hour(window.start), window.end)``
  (the hour is floored in UTC);
- ``ledger_by_correlation``: entries posted in the window widened by one day on each
  side (a usage debit is posted after its hour ends, a correction later still);
- ``orphan_debits``: usage debits posted in the window;
- ``orphan_debits_by_correlation``: usage debits posted in the window widened by one
  day on each side (as ``ledger_by_correlation``);
- ``screen_usage``: as usage (it screens the rows); the credits it returns, from the
  window's start floored to the hour on;
- ``instances_in_scope``: instances whose run ``[started_at, coalesce(stopped_at, now())]``
  overlaps the window (``now()`` of the database).

Failures: a server that cannot be reached (refused, timed out, pool closed, bad
credentials) raises ``SourceUnavailable("billing", …)``; anything the server answers
with an error (statement timeout, missing schema, any other PostgreSQL error) raises
``SourceError("billing", …)``. No message ever carries the password.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from itertools import starmap
from typing import Any, TypeVar

import asyncpg

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
from bot.gcpause import gc_paused
from bot.sources.billing_args import coverage, describe_url, known_reversals, no_reset, partition, sample, screened
from bot.sources.billing_args import ids as ids_of
from bot.sources.billing_export import ExportReads
from bot.sources.billing_sql import QUERIES, SOURCE
from bot.sources.protocols import Coverage, Fetched, KnownCredits, SourceCall, floor_hour

log = logging.getLogger(__name__)

T = TypeVar("T")

LEDGER_CORRELATION_SLACK = timedelta(days=1)
SCHEMA_MISSING = "billing schema not found — for the demo run `recon demo` first"

# Every query's settings: connection settings of an owned pool, else SET LOCAL.
_SETTINGS: dict[str, str] = {
    "default_transaction_read_only": "on",
    "plan_cache_mode": "force_custom_plan",
    "work_mem": "64MB",
}
# Extra SET LOCAL settings of the heavy screening query (tenant scale: 300k+ rows): its
# joins are hash joins on small tables, never a sort of every row (the planner picks
# merge joins from poor CTE estimates), and its parts already share the server's cores
# (no parallel workers on top of them).
_QUERY_SETTINGS: dict[str, dict[str, str]] = {
    "screen_usage": {"enable_mergejoin": "off", "work_mem": "256MB", "max_parallel_workers_per_gather": "0"},
    "orphan_debits": {"max_parallel_workers_per_gather": "0"},
}

# screen_usage over many instances: at most this many concurrent queries (bounded by
# the pool's size), each over at least SCREEN_PART_MIN distinct instances.
SCREEN_PARTS = 2
SCREEN_PART_MIN = 100

# Errors that mean "could not talk to the server at all".
_UNREACHABLE: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncio.TimeoutError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.InvalidAuthorizationSpecificationError,
    asyncpg.exceptions.InvalidPasswordError,
    asyncpg.exceptions.InvalidCatalogNameError,  # database does not exist
    asyncpg.exceptions.ConnectionFailureError,
    asyncpg.exceptions.ClientCannotConnectError,
)


class PostgresBillingReader(ExportReads):
    """``BillingReader`` over an asyncpg pool (given, or created from a URL and owned).

    ``statement_timeout_ms`` bounds every query (a connection setting of an owned pool,
    ``SET LOCAL statement_timeout`` with a caller's pool);
    ``connect_timeout_s`` bounds connecting and waiting for a pooled connection.
    """

    def __init__(
        self,
        pool_or_url: asyncpg.Pool | str,
        statement_timeout_ms: int,
        *,
        connect_timeout_s: float = 10.0,
        max_size: int = 4,
        label: str | None = None,
    ) -> None:
        if statement_timeout_ms <= 0:
            raise ValueError("statement_timeout_ms must be positive")
        self._timeout_ms = int(statement_timeout_ms)
        self._connect_timeout_s = connect_timeout_s
        self._max_size = max_size
        self._pool_lock = asyncio.Lock()
        self._closed = False
        if isinstance(pool_or_url, str):
            self._url: str | None = pool_or_url
            self._pool: asyncpg.Pool | None = None
            self._owns_pool = True
            where, self._password = describe_url(pool_or_url)
        else:
            self._url = None
            self._pool = pool_or_url
            self._owns_pool = False
            self._password = None
            where = "pool"
        self._label = label or f"postgres billing db ({where})"

    @property
    def label(self) -> str:
        return self._label

    async def aclose(self) -> None:
        """Close the pool if this reader created it (a given pool is the caller's)."""
        self._closed = True
        pool, self._pool = self._pool, None
        if pool is not None and self._owns_pool:
            await pool.close()

    async def __aenter__(self) -> PostgresBillingReader:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # ------------------------------------------------------------------ the queries

    async def usage_by_correlation(
        self, correlation_id: str, window: Window
    ) -> Fetched[UsageRecord]:
        start = floor_hour(window.start)
        return await self._run(
            "usage_by_correlation",
            UsageRecord,
            (correlation_id, start, window.end),
            {"correlation_id": correlation_id, "period_start_from": start.isoformat()},
            window,
        )

    async def ledger_by_correlation(
        self, correlation_id: str, window: Window
    ) -> Fetched[LedgerEntry]:
        start = window.start - LEDGER_CORRELATION_SLACK
        end = window.end + LEDGER_CORRELATION_SLACK
        return await self._run(
            "ledger_by_correlation",
            LedgerEntry,
            (correlation_id, start, end),
            {
                "correlation_id": correlation_id,
                "posted_from": start.isoformat(),
                "posted_to": end.isoformat(),
            },
            window,
        )

    async def app_instances(self, app_instance_ids: Sequence[str]) -> Fetched[AppInstance]:
        ids = ids_of(app_instance_ids)
        return await self._run(
            "app_instances", AppInstance, (ids,), {"app_instance_ids": sample(ids)}, None
        )

    async def instances_in_scope(
        self, org_id: str, project_id: str | None, window: Window
    ) -> Fetched[AppInstance]:
        return await self._run(
            "instances_in_scope",
            AppInstance,
            (org_id, project_id, window.start, window.end),
            {"org_id": org_id, "project_id": project_id},
            window,
        )

    async def components(self, app_instance_ids: Sequence[str]) -> Fetched[Component]:
        ids = ids_of(app_instance_ids)
        return await self._run(
            "components", Component, (ids,), {"app_instance_ids": sample(ids)}, None
        )

    async def usage_for_instances(
        self, app_instance_ids: Sequence[str], window: Window
    ) -> Fetched[UsageRecord]:
        ids = ids_of(app_instance_ids)
        start = floor_hour(window.start)
        return await self._run(
            "usage_for_instances",
            UsageRecord,
            (ids, start, window.end),
            {"app_instance_ids": sample(ids), "period_start_from": start.isoformat()},
            window,
        )

    async def usage_by_ids(self, usage_record_ids: Sequence[str]) -> Fetched[UsageRecord]:
        ids = ids_of(usage_record_ids)
        return await self._run(
            "usage_by_ids", UsageRecord, (ids,), {"usage_record_ids": sample(ids)}, None
        )

    async def ledger_for_usage(
        self, usage_record_ids: Sequence[str], known: KnownCredits | None = None
    ) -> Fetched[LedgerEntry]:
        ids = ids_of(usage_record_ids)
        params: dict[str, Any] = {"usage_record_ids": sample(ids)}
        if known is None:
            return await self._run("ledger_for_usage", LedgerEntry, (ids, [], [], None), params, None)
        pairs = sorted(known.org_projects)
        params.update(credits_known_since=known.since.isoformat(), credits_known_for=len(pairs))
        got = await self._run("ledger_for_usage", LedgerEntry,
                              (ids, [o for o, _ in pairs], [p for _, p in pairs], known.since), params, None)
        got.items.extend(known_reversals(got.items, set(ids), known))
        return got

    async def orphan_debits(
        self, org_projects: Sequence[tuple[str, str]], window: Window, app_instance_ids: Sequence[str] = ()
    ) -> Fetched[LedgerEntry]:
        pairs = sorted(set(org_projects))
        orgs = [o for o, _ in pairs]
        projects = [p for _, p in pairs]
        ids = ids_of(app_instance_ids)
        return await self._run(
            "orphan_debits",
            LedgerEntry,
            (orgs, projects, window.start, window.end, ids),
            {"org_projects": [list(p) for p in pairs], "app_instance_ids": sample(ids)},
            window,
        )

    async def orphan_debits_by_correlation(
        self, correlation_ids: Sequence[str], window: Window
    ) -> Fetched[LedgerEntry]:
        ids = ids_of(correlation_ids)
        start = window.start - LEDGER_CORRELATION_SLACK
        end = window.end + LEDGER_CORRELATION_SLACK
        return await self._run(
            "orphan_debits_by_correlation",
            LedgerEntry,
            (ids, start, end),
            {
                "correlation_ids": sample(ids),
                "posted_from": start.isoformat(),
                "posted_to": end.isoformat(),
            },
            window,
        )

    async def screen_usage(
        self, app_instance_ids: Sequence[str], window: Window
    ) -> Fetched[UsageRecord | LedgerEntry | Coverage]:
        """The rows worth a closer look, the credits of the instances' projects that reverse
        an entry, their usage debits without a usage row, and every component's coverage
        (see screen_usage.sql).

        Every rule the query screens for is per app instance (rule 7's groups too: the
        checks group duplicates within one instance's rows), so many instances are
        screened as ``SCREEN_PARTS`` concurrent queries over disjoint sets of them, on
        as many connections: the server's cores share the work, and the union of the
        parts is exactly what one query over all of them returns (an entry of a project
        two parts share comes once).
        """
        ids = ids_of(app_instance_ids)
        start = floor_hour(window.start)
        params = {"app_instance_ids": sample(ids), "period_start_from": start.isoformat()}
        parts = partition(ids, min(SCREEN_PARTS, self._max_size), SCREEN_PART_MIN)
        if len(parts) == 1:
            return await self._run("screen_usage", screened, (parts[0], start, window.end, window.start),
                                   params, window)
        t0 = time.perf_counter()
        got = await asyncio.gather(*(
            self._run("screen_usage", screened, (part, start, window.end, window.start), params, window)
            for part in parts
        ))
        items: list[UsageRecord | LedgerEntry | Coverage] = []
        entries: set[str] = set()
        for f in got:
            for x in f.items:
                if isinstance(x, LedgerEntry):
                    if x.ledger_entry_id in entries:
                        continue
                    entries.add(x.ledger_entry_id)
                items.append(x)
        call = dataclasses.replace(
            got[0].call,
            params={**params, "parts": len(parts)},
            duration_ms=(time.perf_counter() - t0) * 1000.0,
        )
        return Fetched(items, call)

    async def usage_hours(
        self, components: Sequence[tuple[str, str]], window: Window
    ) -> Fetched[Coverage]:
        """The exact coverage (every hour listed) of these (app_instance_id, component)."""
        pairs = sorted(set(components))
        start = floor_hour(window.start)
        return await self._run(
            "usage_hours",
            coverage,
            ([i for i, _ in pairs], [c for _, c in pairs], start, window.end),
            {"components": sample([f"{i}/{c}" for i, c in pairs]), "period_start_from": start.isoformat()},
            window,
        )

    async def billing_accounts(self, org_ids: Sequence[str]) -> Fetched[BillingAccount]:
        ids = ids_of(org_ids)
        return await self._run(
            "billing_accounts", BillingAccount, (ids,), {"org_ids": ids}, None
        )

    async def rate_cards(self, currencies: Sequence[str]) -> Fetched[RateCard]:
        cur = ids_of(currencies)
        return await self._run("rate_cards", RateCard, (cur,), {"currencies": cur}, None)

    # ------------------------------------------------------------------ machinery

    async def _run(
        self,
        name: str,
        make: Callable[..., T],
        args: tuple[Any, ...],
        params: dict[str, Any],
        window: Window | None,
    ) -> Fetched[T]:
        sql = QUERIES[name]
        started_at = datetime.now(UTC)
        t0 = time.perf_counter()
        with gc_paused():
            rows = await self._fetch(name, sql, args)
            items = list(starmap(make, rows))
            del rows
        duration_ms = (time.perf_counter() - t0) * 1000.0
        log.debug("billing %s: %d rows in %.1f ms", name, len(items), duration_ms)
        call = SourceCall(
            source=SOURCE,
            kind="sql",
            request=name,
            params=params,
            window=window,
            started_at=started_at,
            duration_ms=duration_ms,
            via="postgres",
        )
        return Fetched(items, call)

    async def _fetch(self, name: str, sql: str, args: tuple[Any, ...]) -> list[asyncpg.Record]:
        with self._failures(name):
            pool = await self._get_pool()
            async with pool.acquire(timeout=self._connect_timeout_s) as conn:
                local = dict(_QUERY_SETTINGS.get(name, {}))
                if not self._owns_pool:
                    local = {"statement_timeout": str(self._timeout_ms), **_SETTINGS, **local}
                if not local:
                    # connection settings do it all: one round trip
                    rows: list[asyncpg.Record] = await conn.fetch(sql, *args)
                    return rows
                async with self._read_only(conn, local):
                    rows = await conn.fetch(sql, *args)
                return rows

    @contextlib.asynccontextmanager
    async def _session(self, name: str) -> AsyncIterator[Any]:
        """A connection in a read-only transaction with the query settings (a long read's),
        its errors the source errors of ``name``."""
        with self._failures(name):
            pool = await self._get_pool()
            async with pool.acquire(timeout=self._connect_timeout_s) as conn:
                local = {} if self._owns_pool else {"statement_timeout": str(self._timeout_ms), **_SETTINGS}
                async with self._read_only(conn, local, always=True):
                    yield conn

    @contextlib.asynccontextmanager
    async def _read_only(self, conn: Any, local: dict[str, str], *,
                         always: bool = False) -> AsyncIterator[None]:
        """A read-only transaction, BEGIN and the SET LOCALs in one simple query (the values
        are ours, not input)."""
        if not local and not always:
            yield
            return
        try:
            await conn.execute("begin read only; " + "".join(f"set local {k} = '{v}'; " for k, v in local.items()))
            try:
                yield
            except Exception:
                with contextlib.suppress(Exception):
                    await conn.execute("rollback")
                raise
            await conn.execute("commit")
        except asyncio.CancelledError:
            # cancelled at any await from BEGIN to COMMIT (a COPY the export no longer needs, or
            # the BEGIN itself): closed at once, the pool opens another. A rollback would wait on
            # the query; a connection handed back inside a transaction logs an error on reset.
            conn.terminate()
            raise

    @contextlib.contextmanager
    def _failures(self, name: str) -> Iterator[None]:
        """asyncpg's errors as the source errors of bot.errors, password scrubbed."""
        try:
            yield
        except asyncpg.exceptions.QueryCanceledError as e:
            raise SourceError(
                SOURCE, f"query {name} cancelled after the statement timeout "
                f"({self._timeout_ms} ms): {self._scrub(e)}"
            ) from None
        except (asyncpg.exceptions.UndefinedTableError,
                asyncpg.exceptions.InvalidSchemaNameError) as e:
            raise SourceError(SOURCE, f"{SCHEMA_MISSING} ({self._scrub(e)})") from None
        except _UNREACHABLE as e:
            raise SourceUnavailable(
                SOURCE, f"cannot reach {self.label}: {self._scrub(e) or type(e).__name__}"
            ) from None
        except asyncpg.exceptions.InterfaceError as e:
            # pool closed or closing, connection released twice…: no usable connection
            raise SourceUnavailable(SOURCE, f"{self.label}: {self._scrub(e)}") from None
        except asyncpg.PostgresError as e:
            raise SourceError(
                SOURCE, f"query {name} failed: {type(e).__name__}: {self._scrub(e)}"
            ) from None

    async def _get_pool(self) -> asyncpg.Pool:
        if self._closed:
            raise asyncpg.exceptions.InterfaceError("the billing reader is closed")
        if self._pool is not None:
            return self._pool
        async with self._pool_lock:
            if self._pool is None:
                assert self._url is not None
                self._pool = await asyncpg.create_pool(
                    self._url,
                    min_size=0,
                    max_size=self._max_size,
                    timeout=self._connect_timeout_s,
                    server_settings={
                        "application_name": "recon-billing-reader",
                        "statement_timeout": str(self._timeout_ms),
                        **_SETTINGS,
                    },
                    # nothing to reset: the reader never changes session state (its
                    # SET LOCALs end with their transaction); saves a round trip per call
                    reset=no_reset,
                )
            return self._pool

    def _scrub(self, e: BaseException) -> str:
        msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
        if self._password:
            msg = msg.replace(self._password, "***")
        if self._url:
            msg = msg.replace(self._url, self.label)
        return msg
