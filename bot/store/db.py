"""Connections, JSON codec and schema migrations of the bot's own store.

- ``connect_pool(url)``: an asyncpg pool with a ``json``/``jsonb`` codec (canonical JSON:
  sorted keys, datetimes as ISO 8601 in UTC, Decimals as plain decimal text). Failures
  become ``StoreError`` with the URL's password redacted.
- ``migrate(pool_or_conn)``: applies ``bot/store/migrations/NNN_name.sql`` in order, each
  in its own transaction, recorded in ``recon_schema_migrations``. Every transaction
  first takes ``pg_advisory_xact_lock(MIGRATION_LOCK_KEY)`` and re-reads the applied
  versions, so concurrent migrators apply each migration exactly once. It refuses
  (``StoreError``) when an applied migration's file changed (checksum) or the database
  has a version this code does not know.
- ``schema_status(pool)``: ``(current, latest)`` for readiness checks.

Opening the store itself (where it lives, migrated, wrapped in a ``Store``) is
``bot.store.opening``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import itertools
import json
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from datetime import UTC, date, datetime, time
from decimal import Decimal
from functools import cache
from importlib import resources
from pathlib import PurePath
from typing import Any, TypeAlias
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit
from uuid import UUID

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from bot.errors import StoreError
from bot.sqlfiles import Queries

log = logging.getLogger(__name__)

Q = Queries("bot.store", "sql")
Pool: TypeAlias = "asyncpg.Pool[asyncpg.Record]"
Conn: TypeAlias = "asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]"

MIGRATION_LOCK_KEY = 0x7265636F6E5F6D67  # b"recon_mg": one advisory lock for all migrators
_MIGRATION_RE = re.compile(r"(\d{3})_([a-z0-9_]+)\.sql")
NO_STATEMENT_TIMEOUT = "SET LOCAL statement_timeout = 0"  # in a transaction that may wait or run long
_CONNECT_ERRORS = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)


# ------------------------------------------------------------------ URLs


DB_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError)


class NamedQueries:
    """A store over a pool that runs the named queries of ``bot/store/sql``: ``_q(name,
    method, *args)`` is ``pool.<method>(query, *args)``, a database failure raised as a
    ``StoreError`` naming the query."""

    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    async def _q(self, name: str, method: str, *args: Any) -> Any:
        try:
            return await getattr(self._pool, method)(Q[name], *args)
        except DB_ERRORS as exc:
            raise StoreError(f"store query {name} failed: {exc}") from exc


def redact_url(url: str) -> str:
    """The URL with its password (userinfo or ``password=`` parameter) replaced by ***."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "(unparseable URL)"
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostinfo = netloc.rpartition("@")
        if ":" in userinfo:
            user = userinfo.split(":", 1)[0]
            netloc = f"{user}:***@{hostinfo}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(k.lower() == "password" for k, _ in pairs):
            query = urlencode(
                [(k, "***" if k.lower() == "password" else v) for k, v in pairs], safe="/"
            )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _url_password(url: str) -> str | None:
    try:
        parts = urlsplit(url)
        pw = parts.password
        for k, v in parse_qsl(parts.query):
            if k.lower() == "password":
                pw = v
    except ValueError:
        return None
    return pw or None


def _scrub(text: str, url: str) -> str:
    """Remove the URL and its password from an error message."""
    pw = _url_password(url)
    text = text.replace(url, redact_url(url))
    if pw:
        text = text.replace(pw, "***")
    return text


def with_database(url: str, database: str) -> str:
    """The same server URL, pointing at another database."""
    parts = urlsplit(url)
    return urlunsplit(
        (parts.scheme, parts.netloc, "/" + quote(database, safe=""), parts.query, parts.fragment)
    )


# ------------------------------------------------------------------ JSON


def to_jsonable(value: Any) -> Any:
    """``json.dumps`` default: the canonical text of values JSON lacks."""
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC)
        return value.isoformat()
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, UUID | PurePath):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, set | frozenset):
        return sorted(value, key=lambda v: json.dumps(v, default=to_jsonable, sort_keys=True))
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, Mapping):
        return dict(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    model_dump = getattr(value, "model_dump", None)
    if callable(model_dump):  # pydantic models
        return model_dump(mode="json")
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def canonical_json(value: Any) -> str:
    """Sorted keys, no whitespace, UTF-8 text, no NaN: the same value, the same text."""
    return json.dumps(
        value,
        default=to_jsonable,
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
    )


def digest_rows(rows: Sequence[Any]) -> str:
    """sha256 (hex) of the canonical JSON of all the rows (a JSON array)."""
    return hashlib.sha256(canonical_json(list(rows)).encode("utf-8")).hexdigest()


async def _init_connection(conn: asyncpg.Connection[asyncpg.Record]) -> None:
    for typename in ("json", "jsonb"):
        await conn.set_type_codec(
            typename, schema="pg_catalog", encoder=canonical_json, decoder=json.loads
        )


# ------------------------------------------------------------------ pools


async def _release_without_query(conn: asyncpg.Connection[asyncpg.Record]) -> None:
    """What a store connection needs on its way back to the pool: nothing more than
    asyncpg does anyway (roll back an open transaction, drop listener callbacks).

    asyncpg's default reset sends ``pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *;
    RESET ALL`` on every release: a round trip per pooled query. The store's connections
    keep no session state: no ``SET`` (only ``SET LOCAL``), no ``LISTEN`` (the worker
    listens on a connection of its own), no cursors outside transactions, and session
    advisory locks only in ``AlertStore``'s lock helpers, which release them, or terminate
    the connection when taking or releasing one is interrupted."""


class _TimedPool(asyncpg.Pool):
    """A pool whose ``acquire`` (and so every ``pool.fetch…``) waits at most
    ``acquire_timeout`` for a connection: ``TimeoutError``, an ``OSError``, which the
    stores report as ``StoreError``."""

    __slots__ = ("acquire_timeout",)
    acquire_timeout: float | None

    def acquire(self, *, timeout: float | None = None) -> Any:
        return super().acquire(timeout=timeout if timeout is not None else self.acquire_timeout)


async def connect_pool(
    url: str, *, min_size: int = 1, max_size: int = 10, connect_timeout: float = 10.0,
    max_inactive_s: float = 300.0,
    warm: Callable[[asyncpg.Connection[asyncpg.Record]], Awaitable[None]] | None = None,
    acquire_timeout_s: float | None = None, statement_timeout_ms: int | None = None,
) -> Pool:
    """An asyncpg pool on ``url`` with the JSON codec; ``StoreError`` if unreachable.

    ``max_inactive_s``: a connection idle that long is closed (0: never). ``warm``
    runs on every new connection after the codecs are set (see ``bot.store.intake``).
    ``acquire_timeout_s``: how long a query waits for a free connection (None: no end);
    ``statement_timeout_ms``: PostgreSQL cancels a statement running longer (the
    session's ``statement_timeout``; None: the server's). Either is a ``StoreError``."""
    timeout = None if statement_timeout_ms is None else str(int(statement_timeout_ms))
    settings = {"statement_timeout": timeout} if timeout is not None else {}

    async def init(conn: asyncpg.Connection[asyncpg.Record]) -> None:
        await _init_connection(conn)
        if warm is not None:
            await warm(conn)

    try:
        pool = _TimedPool(
            url,
            min_size=min_size,
            max_size=max_size,
            timeout=connect_timeout,
            max_inactive_connection_lifetime=max_inactive_s,
            init=init,
            reset=_release_without_query,
            server_settings=settings,
            connection_class=asyncpg.Connection,
            record_class=asyncpg.Record,
            max_queries=50000,
            loop=None,
        )
        pool.acquire_timeout = acquire_timeout_s
        await pool
    except (*_CONNECT_ERRORS, ValueError) as exc:
        raise StoreError(
            f"cannot connect to the store at {redact_url(url)}: "
            f"{_scrub(str(exc) or type(exc).__name__, url)}"
        ) from None
    return pool


async def connect(
    url: str, *, connect_timeout: float = 10.0
) -> asyncpg.Connection[asyncpg.Record]:
    """One connection with the JSON codec; ``StoreError`` if unreachable."""
    try:
        conn: asyncpg.Connection[asyncpg.Record] = await asyncpg.connect(
            url, timeout=connect_timeout
        )
        await _init_connection(conn)
    except (*_CONNECT_ERRORS, ValueError) as exc:
        raise StoreError(
            f"cannot connect to the store at {redact_url(url)}: "
            f"{_scrub(str(exc) or type(exc).__name__, url)}"
        ) from None
    return conn


@contextlib.asynccontextmanager
async def _connection(target: Pool | Conn) -> AsyncIterator[Conn]:
    if isinstance(target, asyncpg.Pool):
        async with target.acquire() as conn:
            yield conn
    else:
        yield target


# ------------------------------------------------------------------ migrations


@dataclasses.dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str  # "001_core"
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode("utf-8")).hexdigest()


@cache
def _packaged_migrations() -> tuple[Migration, ...]:
    root = resources.files("bot.store").joinpath("migrations")
    found: list[Migration] = []
    for entry in root.iterdir():
        m = _MIGRATION_RE.fullmatch(entry.name)
        if m is None:
            if entry.name.endswith(".sql"):
                raise StoreError(f"migration file {entry.name!r} is not named NNN_name.sql")
            continue
        found.append(Migration(int(m.group(1)), entry.name[:-4], entry.read_text("utf-8")))
    return tuple(check_migrations(found))


def check_migrations(migrations: Sequence[Migration]) -> list[Migration]:
    """Sorted by version; refuses duplicate versions."""
    ordered = sorted(migrations, key=lambda m: m.version)
    for a, b in itertools.pairwise(ordered):
        if a.version == b.version:
            raise StoreError(f"two migrations with version {a.version}: {a.name}, {b.name}")
    return ordered


def known_migrations() -> list[Migration]:
    """The migrations shipped with this code, in order."""
    return list(_packaged_migrations())


async def _applied(conn: Conn) -> dict[int, asyncpg.Record]:
    return {r["version"]: r for r in await conn.fetch(Q["migrations_applied"])}


def _verify(applied: Mapping[int, asyncpg.Record], known: Sequence[Migration]) -> None:
    by_version = {m.version: m for m in known}
    latest = max(by_version, default=0)
    for version, row in applied.items():
        m = by_version.get(version)
        if m is None:
            raise StoreError(
                f"the store has schema migration {version} ({row['name']}) which this "
                f"version of recon does not know (it knows up to {latest}); "
                "upgrade recon, or point DATABASE_URL at another database"
            )
        if row["checksum"] != m.checksum:
            raise StoreError(
                f"migration {m.name} was changed after it was applied to the store "
                f"(checksum {row['checksum'][:12]}… in the database, {m.checksum[:12]}… "
                "in the file); restore the file and add a new migration instead"
            )


async def migrate(
    target: Pool | Conn, *, migrations: Sequence[Migration] | None = None
) -> list[str]:
    """Apply pending migrations; returns the names applied (empty when up to date)."""
    known = check_migrations(migrations) if migrations is not None else known_migrations()
    done: list[str] = []
    async with _connection(target) as conn:
        try:
            async with conn.transaction():
                await conn.execute(NO_STATEMENT_TIMEOUT)
                await conn.execute(Q["migrations_lock"], MIGRATION_LOCK_KEY)
                await conn.execute(Q["migrations_create_table"])
                applied = await _applied(conn)
                _verify(applied, known)
            for m in known:
                if m.version in applied:
                    continue
                async with conn.transaction():
                    # a migration may rewrite a big table, and waits for other migrators
                    await conn.execute(NO_STATEMENT_TIMEOUT)
                    await conn.execute(Q["migrations_lock"], MIGRATION_LOCK_KEY)
                    applied = await _applied(conn)  # another migrator may have run
                    _verify(applied, known)
                    if m.version in applied:
                        continue
                    try:
                        await conn.execute(m.sql)
                    except asyncpg.PostgresError as exc:
                        raise StoreError(f"migration {m.name} failed: {exc}") from exc
                    await conn.execute(Q["migrations_record"], m.version, m.name, m.checksum)
                log.info("applied store migration %s", m.name)
                done.append(m.name)
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
            raise StoreError(f"cannot migrate the store: {exc}") from exc
    return done


async def schema_status(target: Pool | Conn) -> tuple[int, int]:
    """``(current, latest)``: the highest applied migration, and the highest known."""
    latest = max((m.version for m in known_migrations()), default=0)
    try:
        async with _connection(target) as conn:
            if not await conn.fetchval(Q["migrations_table_exists"]):
                return 0, latest
            current = int(await conn.fetchval(Q["migrations_current"]))
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
        raise StoreError(f"cannot read the store's schema version: {exc}") from exc
    return current, latest
