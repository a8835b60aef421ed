"""Job counts for /metrics come from the deltas migration 012's triggers keep, exact and
never from a count over jobs (an unauthenticated scrape could make the store count the
whole table, as often as it liked)."""

from __future__ import annotations

import asyncpg
import pytest

from bot.store.db import connect_pool
from bot.store.jobs import COUNTS_COMPACT_AFTER, JobQueue
from bot.store.store import Store


async def actual(store: Store) -> dict[str, int]:
    rows = await store.pool.fetch("SELECT status, count(*)::bigint AS n FROM jobs GROUP BY status")
    return {r["status"]: int(r["n"]) for r in rows}


async def test_counts_follow_every_change_of_status(store: Store) -> None:
    q = JobQueue(store.pool)
    assert await q.counts() == {}
    for i in range(5):
        await q.enqueue("k", f"key-{i}", {})
    await q.enqueue("k", "key-0", {})  # the active one: nothing new
    a = await q.claim("w1", 30, ["k"])
    b = await q.claim("w1", 30, ["k"])
    c = await q.claim("w1", 30, ["k"])
    assert a and b and c
    assert await q.finish(a.job_id, "w1")
    assert await q.fail(b.job_id, "w1", "boom", 0) == "queued"  # retried later
    await store.pool.execute("UPDATE jobs SET max_attempts = 1 WHERE job_id = $1", c.job_id)
    assert await q.fail(c.job_id, "w1", "boom", 0) == "failed"
    await q.renew(a.job_id, "w1", 30)  # no change of status: no delta
    with pytest.raises(asyncpg.DivisionByZeroError):  # rolled back: its deltas too
        async with store.pool.acquire() as conn, conn.transaction():
            await conn.execute("UPDATE jobs SET status = 'done' WHERE status = 'queued'")
            await conn.execute("SELECT 1/0")
    assert await q.counts() == await actual(store) == {"queued": 3, "done": 1, "failed": 1}
    await store.pool.execute("DELETE FROM jobs WHERE status IN ('done', 'failed')")
    assert await q.counts() == await actual(store) == {"queued": 3}


async def test_counts_fold_their_deltas(store: Store) -> None:
    q = JobQueue(store.pool)
    await store.pool.execute("INSERT INTO jobs (kind, dedup_key, status) "
                             "SELECT 'k', 'key-' || i, 'done' FROM generate_series(1, $1) i",
                             COUNTS_COMPACT_AFTER + 1)
    assert await store.pool.fetchval("SELECT count(*) FROM job_counts") == COUNTS_COMPACT_AFTER + 1
    assert await q.counts() == {"done": COUNTS_COMPACT_AFTER + 1}  # read, then folded
    assert await store.pool.fetchval("SELECT count(*) FROM job_counts") == 1
    assert await q.counts() == await actual(store)


async def test_a_scrape_never_reads_the_jobs_table(store: Store, store_url: str) -> None:
    """With the jobs table locked by another transaction, reading the counts still works:
    it does not touch jobs (a count over jobs would wait for the lock, and time out)."""
    q = JobQueue(store.pool)
    await q.enqueue("k", "key-1", {})
    scraper = await connect_pool(store_url, min_size=1, max_size=1)
    try:
        await scraper.execute("SET lock_timeout = '200ms'")
        async with store.pool.acquire() as locker, locker.transaction():
            await locker.execute("LOCK TABLE jobs IN ACCESS EXCLUSIVE MODE")
            assert await JobQueue(scraper).counts() == {"queued": 1}
    finally:
        await scraper.close()
