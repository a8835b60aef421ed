"""The store pool's acquire and statement timeouts: a stuck statement is cancelled and a
wait for a connection ends, each as a ``StoreError``; waiting for an alert group's lock
is not a stuck statement; the worker's LISTEN connection has neither."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest
import pytest_asyncio
from pydantic import SecretStr

from bot.errors import StoreError
from bot.settings import Settings
from bot.store.alerts import AlertStore
from bot.store.db import Pool, connect_pool
from bot.store.jobs import JobQueue
from bot.store.opening import open_store


@pytest_asyncio.fixture
async def tight_pool(store_url: str) -> AsyncIterator[Pool]:
    pool = await connect_pool(store_url, max_size=2, acquire_timeout_s=0.5, statement_timeout_ms=300)
    try:
        yield pool
    finally:
        await pool.close()


async def test_a_stuck_statement_is_cancelled_as_a_store_error(tight_pool: Pool, store_url: str) -> None:
    queue = JobQueue(tight_pool)
    job, _ = await queue.enqueue("k", "k:stuck", {})
    blocker: asyncpg.Connection[asyncpg.Record] = await asyncpg.connect(store_url)
    try:
        async with blocker.transaction():
            await blocker.execute("SELECT 1 FROM jobs WHERE job_id = $1 FOR UPDATE", job.job_id)
            with pytest.raises(StoreError, match="canceling statement due to statement timeout"):
                await queue.set_incident(job.job_id, "inc-x")  # waits on the row lock: stuck
    finally:
        await blocker.close()
    assert await queue.get(job.job_id) is not None  # the connection went back and works


async def test_a_wait_for_a_connection_ends_as_a_store_error(tight_pool: Pool) -> None:
    queue = JobQueue(tight_pool)
    async with tight_pool.acquire(), tight_pool.acquire():  # every connection held (a stuck holder)
        with pytest.raises(StoreError, match="store query job_counts failed"):
            await queue.counts()
    assert await queue.counts() == {}


async def test_waiting_for_an_alert_groups_lock_outlasts_the_statement_timeout(tight_pool: Pool) -> None:
    alerts = AlertStore(tight_pool, reopen_s=60, storm_threshold=5, storm_window_s=120)
    order: list[str] = []
    held = asyncio.Event()

    async def first() -> None:
        async with alerts.group_lock(7):
            held.set()
            await asyncio.sleep(1.0)  # a diagnosis under the lock, longer than the statement timeout
            order.append("first")

    async def second() -> None:
        await held.wait()
        async with alerts.group_lock(7):
            order.append("second")
            async with tight_pool.acquire() as conn:  # the connection's own timeout is back
                assert await conn.fetchval("SHOW statement_timeout") == "300ms"

    try:
        await asyncio.gather(first(), second())
    finally:
        await alerts.aclose()
    assert order == ["first", "second"]


async def test_open_store_applies_the_settings(store_url: str) -> None:
    settings = Settings(DATABASE_URL=SecretStr(store_url), RECON_STORE_STATEMENT_TIMEOUT_MS=1234,
                        RECON_STORE_ACQUIRE_TIMEOUT_S=7)
    store = await open_store(settings)
    try:
        async with store.pool.acquire() as conn:
            assert await conn.fetchval("SHOW statement_timeout") == "1234ms"
        assert getattr(store.pool, "acquire_timeout", None) == 7
    finally:
        await store.close()
