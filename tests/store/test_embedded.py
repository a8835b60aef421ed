"""The embedded PostgreSQL: start, reuse, crash leftovers, stale pid files, bad pgdata."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio

from bot.errors import EmbeddedPostgresError, StoreError
from bot.settings import Settings
from bot.store.db import schema_status
from bot.store.embedded import (
    ensure_database,
    ensure_embedded,
    stop_embedded,
    stop_embedded_sync,
)
from bot.store.opening import open_store

CHILD = """
import sys
from pathlib import Path
from bot.store.embedded import ensure_embedded_sync
s = ensure_embedded_sync(Path(sys.argv[1]), durable=False)
print(s.pid, s.reused)
"""


@pytest_asyncio.fixture
async def root(fast_tmp: Path) -> AsyncIterator[Path]:
    """A temp dir; every server started under it is stopped afterwards."""
    try:
        yield fast_tmp
    finally:
        for pid_file in fast_tmp.rglob("postmaster.pid"):
            with contextlib.suppress(EmbeddedPostgresError):
                await asyncio.to_thread(stop_embedded_sync, pid_file.parent)


def _live_process_of_server_user() -> subprocess.Popen[bytes]:
    """A live process that is not PostgreSQL, owned by the user the server runs as."""
    as_root = os.geteuid() == 0
    return subprocess.Popen(
        ["cat"], stdin=subprocess.PIPE, user="embedded_postgres" if as_root else None
    )


async def _select_one(url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        return int(await conn.fetchval("SELECT 1"))
    finally:
        await conn.close()


async def test_start_then_reuse(root: Path, caplog: pytest.LogCaptureFixture) -> None:
    pgdata = root / "pgdata"
    with caplog.at_level(logging.INFO, logger="bot.store.embedded"):
        first = await ensure_embedded(pgdata, durable=False)
        again = await ensure_embedded(pgdata, durable=False)
    assert not first.reused and again.reused
    assert again.pid == first.pid
    assert again.base_uri == first.base_uri
    assert "starting embedded PostgreSQL in" in caplog.text
    assert "reusing embedded PostgreSQL at" in caplog.text
    assert (pgdata / "PG_VERSION").is_file()
    assert await _select_one(first.base_uri) == 1

    # databases: created once, race-safe
    created = await asyncio.gather(*(ensure_database(first.base_uri, "recon") for _ in range(3)))
    assert sorted(created) == [False, False, True]
    assert await ensure_database(first.base_uri, "recon") is False
    assert await _select_one(first.url_for("recon")) == 1

    assert await stop_embedded(pgdata) is True
    assert not (pgdata / "postmaster.pid").exists()
    assert await stop_embedded(pgdata) is False
    # a cluster initialised by someone else (no include of recon.conf) still gets
    # recon's settings: unix socket only
    conf = pgdata / "postgresql.conf"
    conf.write_text(conf.read_text().replace("include_if_exists = 'recon.conf'", ""))
    restarted = await ensure_embedded(pgdata, durable=False)
    assert not restarted.reused and restarted.pid != first.pid
    assert await _select_one(restarted.url_for("recon")) == 1  # the data survived
    conn = await asyncpg.connect(restarted.base_uri)
    try:
        assert await conn.fetchval("SHOW listen_addresses") == ""
        assert await conn.fetchval("SHOW fsync") == "off"
    finally:
        await conn.close()


async def test_two_processes_starting_at_once_share_one_server(root: Path) -> None:
    pgdata = root / "pgdata"
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-c", CHILD, str(pgdata),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        for _ in range(2)
    ]
    outs = await asyncio.gather(*(p.communicate() for p in procs))
    for p, (_, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err.decode()
    answers = sorted(tuple(out.decode().split()) for out, _ in outs)
    pids = {pid for pid, _ in answers}
    assert len(pids) == 1, answers
    assert [reused for _, reused in answers] == ["False", "True"]  # one started, one reused
    # the server outlived both processes, and this process reuses it
    here = await ensure_embedded(pgdata, durable=False)
    assert here.reused and str(here.pid) in pids


async def test_leftovers_of_a_crashed_init_are_cleaned(root: Path) -> None:
    pgdata = root / "pgdata"
    crashed = root / ".pgdata.init-0badc0de"
    (crashed / "base").mkdir(parents=True)
    (crashed / "PG_VERSION").write_text("18\n")  # initdb got this far, then died
    pgdata.mkdir()  # and an empty pgdata (e.g. made by hand, or by an older version)
    server = await ensure_embedded(pgdata, durable=False)
    assert not crashed.exists()
    assert not [p for p in root.iterdir() if p.name.startswith(".pgdata.init-")]
    assert await _select_one(server.base_uri) == 1


async def test_stale_postmaster_pid_is_replaced(root: Path) -> None:
    pgdata = root / "pgdata"
    first = await ensure_embedded(pgdata, durable=False)
    await stop_embedded(pgdata)

    # a pid that is alive, of the server's own OS user, but not a postmaster (as after
    # pid reuse): PostgreSQL itself would refuse to start over it
    pid_file = pgdata / "postmaster.pid"
    squatter = _live_process_of_server_user()
    try:
        pid_file.write_text(f"{squatter.pid}\n{pgdata}\n1700000000\n5432\n{pgdata}\n\n  1 2\nready   \n")
        # and the socket lock file of the killed server, naming that live pid too
        (pgdata / ".s.PGSQL.5432.lock").write_text(f"{squatter.pid}\n{pgdata}\n1700000000\n5432\n")
        second = await ensure_embedded(pgdata, durable=False)
    finally:
        squatter.kill()
        squatter.wait()
    assert not second.reused and second.pid not in (first.pid, squatter.pid)
    await stop_embedded(pgdata)

    # a pid that is dead
    dead = subprocess.Popen(["true"])
    dead.wait()
    pid_file.write_text(f"{dead.pid}\n{pgdata}\n1700000000\n5432\n{pgdata}\n\n  1 2\nready   \n")
    third = await ensure_embedded(pgdata, durable=False)
    assert not third.reused
    await stop_embedded(pgdata)

    # a garbled file (e.g. a crash while it was being written)
    pid_file.write_text("garb")
    fourth = await ensure_embedded(pgdata, durable=False)
    assert not fourth.reused
    assert await _select_one(fourth.base_uri) == 1


async def test_database_names_are_checked() -> None:
    with pytest.raises(StoreError, match="not a plain identifier"):
        await ensure_database("postgresql://postgres@/postgres?host=/nowhere", 'x"; DROP')


async def test_a_file_where_pgdata_should_be(root: Path) -> None:
    pgdata = root / "pgdata"
    pgdata.write_text("not a directory")
    with pytest.raises(EmbeddedPostgresError) as info:
        await ensure_embedded(pgdata, durable=False)
    msg = str(info.value)
    assert f"{pgdata} exists and is not a directory" in msg
    assert "DATABASE_URL" in msg
    assert pgdata.read_text() == "not a directory"  # left alone


async def test_a_file_where_the_data_dir_should_be(root: Path) -> None:
    (root / "data").write_text("x")
    with pytest.raises(EmbeddedPostgresError, match="cannot create the data directory"):
        await ensure_embedded(root / "data" / "pgdata", durable=False)


async def test_a_foreign_non_empty_dir_is_not_overwritten(root: Path) -> None:
    pgdata = root / "pgdata"
    pgdata.mkdir()
    (pgdata / "notes.txt").write_text("mine")
    with pytest.raises(EmbeddedPostgresError, match="not empty but holds no PostgreSQL cluster"):
        await ensure_embedded(pgdata, durable=False)
    assert (pgdata / "notes.txt").read_text() == "mine"


async def test_a_server_that_cannot_start_shows_the_log_tail(root: Path) -> None:
    pgdata = root / "pgdata"
    await ensure_embedded(pgdata, durable=False)
    await stop_embedded(pgdata)
    with (pgdata / "postgresql.conf").open("a") as conf:
        conf.write("\nshared_buffers = 'lots and lots'\n")
    with pytest.raises(EmbeddedPostgresError) as info:
        await ensure_embedded(pgdata, durable=False)
    msg = str(info.value)
    assert "the server did not start" in msg
    assert "last lines of" in msg and "shared_buffers" in msg  # from the server log
    assert "set DATABASE_URL" in msg


async def test_a_long_path_gets_a_short_socket_dir(root: Path) -> None:
    deep = root.joinpath(*(["d" * 30] * 4))
    deep.mkdir(parents=True)
    server = await ensure_embedded(deep / "pgdata", durable=False)
    assert server.socket_dir != deep / "pgdata"
    assert len(str(server.socket_dir / ".s.PGSQL.5432")) <= 100
    assert await _select_one(server.base_uri) == 1


async def test_open_store_without_database_url_uses_the_embedded_server(root: Path) -> None:
    settings = Settings(DATABASE_URL=None, RECON_DATA_DIR=root / "data")
    store = await open_store(settings)
    try:
        current, latest = await schema_status(store.pool)
        assert current == latest >= 2
        assert await store.pool.fetchval("SELECT current_database()") == "recon"
        assert (settings.pgdata_dir / "PG_VERSION").is_file()
    finally:
        await store.close()
    again = await open_store(settings)  # reuses the server, migrates nothing
    await again.close()
