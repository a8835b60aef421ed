"""Shared fixtures: one real PostgreSQL per test session, a fresh database per test.

- ``pg_server_url`` (session): a maintenance-database URL. ``DATABASE_URL`` from the
  environment when set (the role needs CREATEDB), else an embedded server in a session
  temp dir (on tmpfs when available: ``fast_tmp_dir``), stopped and deleted at the
  end. Started only if some test asks for it.
- ``pg_template`` (session): the name of a template database with the store migrated
  once.
- ``store_url`` (function): a database cloned from the template for this test
  (``CREATE DATABASE t_<uuid> TEMPLATE …``), dropped afterwards.
- ``store`` (function): a ``Store`` on ``store_url``.
- ``fresh_database`` (function): the URL of an empty database (no store schema), for
  loading other schemas (the billing schema) or testing migrations; dropped afterwards.
- ``fast_tmp`` (function): a temp dir on tmpfs when available, deleted afterwards.
- ``demo_loaded`` (function): the demo platform as of ``tests.constants.NOW`` loaded into
  ``fresh_database``, its logs and traces an offline evidence folder (``LoadedPlatform``).
- ``loki_standin``, ``tempo_standin``, ``slack_standin``, ``real_alertmanager_factory``:
  the loopback stand-ins of ``tests/standins``.

Helpers shared by several folders: ``load`` (a platform into a billing database and an
evidence folder) and ``every_injection``.

Usage::

    async def test_something(store: Store) -> None: ...
    async def test_billing(fresh_database: str) -> None:
        conn = await asyncpg.connect(fresh_database) ...
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio

from bot.scenario import FLAVOURS, Injection, Platform, build_platform, demo_spec
from bot.scenario.evidence_files import write_evidence
from bot.scenario.load import load_billing
from bot.store.db import connect, connect_pool, migrate, with_database
from bot.store.embedded import ensure_embedded, stop_embedded
from bot.store.store import Store
from tests.constants import NOW
from tests.standins.alertmanager import real_alertmanager_factory
from tests.standins.loki import loki_standin
from tests.standins.slack import slack_standin
from tests.standins.tempo import tempo_standin

__all__ = ["loki_standin", "real_alertmanager_factory", "slack_standin", "tempo_standin"]


def fast_tmp_dir(tmp_path_factory: pytest.TempPathFactory, name: str) -> Path:
    """A new temp dir on tmpfs (``/dev/shm``) when there is one, else pytest's temp dir.

    Creating a database from a template is ~30x faster on tmpfs than on some disks.
    The caller deletes it.
    """
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        return Path(tempfile.mkdtemp(prefix=f"recon-{name}-", dir=shm))
    return tmp_path_factory.mktemp(name)


@pytest.fixture
def fast_tmp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A temp dir for this test, on tmpfs when available; deleted afterwards."""
    d = fast_tmp_dir(tmp_path_factory, "test")
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest_asyncio.fixture(scope="session")
async def pg_server_url(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    """URL of a maintenance database on the session's PostgreSQL server."""
    external = os.environ.get("DATABASE_URL")
    if external:
        yield external
        return
    root = fast_tmp_dir(tmp_path_factory, "embedded-pg")
    pgdata = root / "pgdata"
    server = await ensure_embedded(pgdata, durable=False)
    try:
        yield server.base_uri
    finally:
        await stop_embedded(pgdata)
        shutil.rmtree(root, ignore_errors=True)


@pytest_asyncio.fixture(scope="session")
async def pg_admin(pg_server_url: str) -> AsyncIterator[asyncpg.Connection[asyncpg.Record]]:
    """A session connection to the maintenance database, for CREATE/DROP DATABASE."""
    conn: asyncpg.Connection[asyncpg.Record] = await asyncpg.connect(pg_server_url)
    try:
        yield conn
    finally:
        await conn.close()


async def _create_db(
    admin: asyncpg.Connection[asyncpg.Record], prefix: str, template: str | None = None
) -> str:
    name = f"{prefix}_{uuid.uuid4().hex[:16]}"
    sql = f'CREATE DATABASE "{name}"'
    if template:
        sql += f' TEMPLATE "{template}"'
    await admin.execute(sql)
    return name


async def _drop_db(admin: asyncpg.Connection[asyncpg.Record], name: str) -> None:
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest_asyncio.fixture(scope="session")
async def pg_template(
    pg_server_url: str, pg_admin: asyncpg.Connection[asyncpg.Record]
) -> AsyncIterator[str]:
    """Name of a template database holding the migrated store schema (no rows)."""
    name = await _create_db(pg_admin, "recon_tpl")
    conn = await connect(with_database(pg_server_url, name))
    try:
        await migrate(conn)
    finally:
        await conn.close()  # a template must have no connections while it is cloned
    try:
        yield name
    finally:
        await _drop_db(pg_admin, name)


@pytest_asyncio.fixture
async def store_url(
    pg_server_url: str, pg_admin: asyncpg.Connection[asyncpg.Record], pg_template: str
) -> AsyncIterator[str]:
    """URL of a fresh database cloned from the migrated template; dropped after the test."""
    name = await _create_db(pg_admin, "t", template=pg_template)
    try:
        yield with_database(pg_server_url, name)
    finally:
        await _drop_db(pg_admin, name)


@pytest_asyncio.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    """A ``Store`` on this test's own migrated database."""
    pool = await connect_pool(store_url, min_size=1, max_size=4)
    s = Store(pool)
    try:
        yield s
    finally:
        await s.close()


@pytest_asyncio.fixture
async def fresh_database(
    pg_server_url: str, pg_admin: asyncpg.Connection[asyncpg.Record]
) -> AsyncIterator[str]:
    """URL of an empty database (template1 copy); dropped after the test."""
    name = await _create_db(pg_admin, "t")
    try:
        yield with_database(pg_server_url, name)
    finally:
        await _drop_db(pg_admin, name)


@dataclass(frozen=True, slots=True)
class LoadedPlatform:
    platform: Platform
    billing_url: str
    evidence: Path


async def load(platform: Platform, url: str, folder: Path) -> LoadedPlatform:
    """``platform``'s billing rows into the database at ``url``, its logs and traces into ``folder``."""
    conn = await asyncpg.connect(url)
    try:
        await load_billing(conn, platform, replace=True)
    finally:
        await conn.close()
    write_evidence(platform, folder)
    return LoadedPlatform(platform, url, folder)


@pytest_asyncio.fixture
async def demo_loaded(fresh_database: str, tmp_path: Path) -> AsyncIterator[LoadedPlatform]:
    yield await load(build_platform(demo_spec(), now=NOW, seed=7), fresh_database, tmp_path / "evidence")


def every_injection(*, alternate_hours: bool = False) -> list[Injection]:
    """One injection of every flavour of every check, each an hour long, or with
    ``alternate_hours`` 1 and 2 hours long by turns within a check."""
    return [
        Injection(check, flavour, hours=1 + n % 2 if alternate_hours else 1)
        for check, flavours in FLAVOURS.items()
        for n, flavour in enumerate(flavours)
    ]


async def faithful_export(loaded: LoadedPlatform, org: str, path: Path, project: str | None = None) -> Path:
    """What the billing UI's "Export usage" gives for the org's months of the 7-day window."""
    from datetime import timedelta

    from bot.export.request import months_of
    from bot.export.sample import write_export
    from bot.sources.billing import PostgresBillingReader

    reader = PostgresBillingReader(loaded.billing_url, statement_timeout_ms=10_000)
    try:
        with path.open("w", newline="", encoding="utf-8") as out:
            await write_export(reader, out, org, months_of(NOW - timedelta(days=7), NOW), project)
    finally:
        await reader.aclose()
    return path
