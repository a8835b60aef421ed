"""Schema migrations: ordered, recorded, idempotent, concurrent-safe, tamper-refusing."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import SecretStr

from bot.errors import StoreError
from bot.settings import Settings
from bot.store.db import (
    Migration,
    connect,
    connect_pool,
    known_migrations,
    migrate,
    redact_url,
    schema_status,
    with_database,
)
from bot.store.opening import open_store

ALL = [m.name for m in known_migrations()]
LATEST = known_migrations()[-1].version


def _extra() -> list[Migration]:
    return [
        *known_migrations(),
        Migration(900, "900_extra", "CREATE TABLE extra (x int PRIMARY KEY);"),
        Migration(901, "901_more", "ALTER TABLE extra ADD COLUMN y text;"),
    ]


def test_packaged_migrations_are_numbered_in_order() -> None:
    known = known_migrations()
    assert known[0].name == "001_core" and known[0].version == 1
    assert [m.version for m in known] == sorted({m.version for m in known})
    assert all(len(m.checksum) == 64 for m in known)


def test_duplicate_versions_are_refused() -> None:
    with pytest.raises(StoreError, match="two migrations with version 2"):
        from bot.store.db import check_migrations

        check_migrations([Migration(2, "002_a", ""), Migration(2, "002_b", "")])


async def test_migrate_twice_applies_nothing_the_second_time(fresh_database: str) -> None:
    pool = await connect_pool(fresh_database)
    try:
        assert await schema_status(pool) == (0, LATEST)
        assert await migrate(pool) == ALL
        assert await migrate(pool) == []
        assert await schema_status(pool) == (LATEST, LATEST)
        rows = await pool.fetch("SELECT version, name, checksum, applied_at FROM recon_schema_migrations "
                                "ORDER BY version")
        assert [(r["version"], r["name"]) for r in rows] == [(m.version, m.name) for m in known_migrations()]
        assert rows[0]["checksum"] == known_migrations()[0].checksum
        assert rows[0]["applied_at"] is not None
        tables = {
            r["tablename"]
            for r in await pool.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        }
        assert {"incidents", "diagnosis_runs", "timeline_events", "evidence"} <= tables
    finally:
        await pool.close()


async def test_concurrent_migrators_apply_each_migration_once(fresh_database: str) -> None:
    pools = [await connect_pool(fresh_database, max_size=2) for _ in range(4)]
    try:
        results = await asyncio.gather(*(migrate(p, migrations=_extra()) for p in pools))
        applied = [name for names in results for name in names]
        assert sorted(applied) == sorted([*ALL, "900_extra", "901_more"])
        versions = await pools[0].fetch("SELECT version FROM recon_schema_migrations")
        assert sorted(r["version"] for r in versions) == [*(m.version for m in known_migrations()), 900, 901]
    finally:
        for p in pools:
            await p.close()


async def test_migrate_on_a_single_connection(fresh_database: str) -> None:
    conn = await connect(fresh_database)
    try:
        assert await migrate(conn) == ALL
        assert await schema_status(conn) == (LATEST, LATEST)
    finally:
        await conn.close()


async def test_changed_migration_is_refused(fresh_database: str) -> None:
    conn = await connect(fresh_database)
    try:
        await migrate(conn)
        core = known_migrations()[0]
        edited = Migration(1, core.name, core.sql + "\n-- an edit\n")
        with pytest.raises(StoreError, match="001_core was changed after it was applied"):
            await migrate(conn, migrations=[edited])
    finally:
        await conn.close()


async def test_newer_database_is_refused(fresh_database: str) -> None:
    conn = await connect(fresh_database)
    try:
        await migrate(conn)
        await conn.execute(
            "INSERT INTO recon_schema_migrations (version, name, checksum) "
            "VALUES (999, '999_future', 'x')"
        )
        with pytest.raises(StoreError, match=r"migration 999 \(999_future\) which this version"):
            await migrate(conn)
        assert await schema_status(conn) == (999, LATEST)
    finally:
        await conn.close()


async def test_failed_migration_rolls_back_and_records_nothing(fresh_database: str) -> None:
    bad = [
        *known_migrations(),
        Migration(900, "900_bad", "CREATE TABLE half (x int); SELECT no_such_function();"),
    ]
    conn = await connect(fresh_database)
    try:
        with pytest.raises(StoreError, match="migration 900_bad failed"):
            await migrate(conn, migrations=bad)
        assert await conn.fetchval("SELECT to_regclass('half')") is None
        assert await schema_status(conn) == (LATEST, LATEST)  # the packaged ones stay applied
    finally:
        await conn.close()


async def test_open_store_with_database_url(fresh_database: str) -> None:
    store = await open_store(Settings(DATABASE_URL=SecretStr(fresh_database)))
    try:
        assert await schema_status(store.pool) == (LATEST, LATEST)
        inc = await store.create_incident(title="t", origin="cli", correlation_id="c1")
        assert await store.get_incident(inc.incident_id) == inc
    finally:
        await store.close()


def test_redact_url() -> None:
    assert redact_url("postgresql://bob:s3cret@db:5432/recon") == "postgresql://bob:***@db:5432/recon"
    assert redact_url("postgresql://bob@db/recon") == "postgresql://bob@db/recon"
    assert "s3cret" not in redact_url("postgresql://db/recon?user=bob&password=s3cret")
    assert with_database("postgresql://u:p@h:1/a?sslmode=disable", "b") == (
        "postgresql://u:p@h:1/b?sslmode=disable"
    )


async def test_unreachable_store_is_a_clear_error_without_the_password() -> None:
    url = "postgresql://bob:s3cret@/recon?host=/nonexistent-recon-socket-dir&port=5999"
    with pytest.raises(StoreError) as info:
        await connect_pool(url, connect_timeout=2)
    msg = str(info.value)
    assert "cannot connect to the store" in msg
    assert "bob:***@" in msg and "s3cret" not in msg


async def test_wrong_password_message_has_no_password(pg_server_url: str) -> None:
    # trust auth accepts any password; an unknown role is refused: the message must
    # still not repeat the password
    url = with_database(pg_server_url, "postgres").replace(
        "postgresql://postgres@", "postgresql://nobody_here:hunter22@"
    )
    try:
        pool = await connect_pool(url, connect_timeout=5)
    except StoreError as exc:
        assert "hunter22" not in str(exc)
        assert "nobody_here" in str(exc)
    else:  # an external DATABASE_URL server might accept it: nothing to check then
        await pool.close()
        pytest.skip("the server accepted the role")


async def test_schema_status_of_an_unreachable_pool_is_a_store_error(fresh_database: str) -> None:
    pool = await connect_pool(fresh_database)
    await pool.close()
    with pytest.raises(StoreError, match="schema version"):
        await schema_status(pool)
