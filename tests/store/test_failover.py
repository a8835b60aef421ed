"""Failover from PostgreSQL itself: a worker whose process dies (or whose presence
connection ends) has its running job taken by another worker at once, long before its
lease runs out, and the job is run to its end once."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import asyncpg
import pytest_asyncio

from bot.store.jobs import Job, JobQueue
from bot.store.store import Store
from bot.worker import Worker

KIND = "failover_job"
ROOT = Path(__file__).resolve().parents[2]
LONG_LEASE_S = 600.0  # the lease never runs out during a test: only the owner lock can free the job

# a worker process: claims the job with a long lease, says so, and hangs in it
CHILD = textwrap.dedent(f"""
    import asyncio, sys
    from bot.store.db import connect_pool
    from bot.store.jobs import JobQueue
    from bot.worker import Worker

    async def main(url):
        pool = await connect_pool(url, max_size=2)
        async def hang(job):
            print("started", job.job_id, flush=True)
            await asyncio.Event().wait()
        worker = Worker(JobQueue(pool), {{"{KIND}": hang}}, listen_url=url, owner="doomed",
                        lease_s={LONG_LEASE_S}, poll_s=0.05)
        await worker.run()

    asyncio.run(main(sys.argv[1]))
""")


@pytest_asyncio.fixture
async def admin(store_url: str) -> AsyncIterator[asyncpg.Connection[asyncpg.Record]]:
    conn: asyncpg.Connection[asyncpg.Record] = await asyncpg.connect(store_url)
    try:
        yield conn
    finally:
        await conn.close()


class Taker:
    """A second worker, in this process: notes each job it starts and finishes it."""

    def __init__(self, queue: JobQueue, url: str) -> None:
        self.started: asyncio.Queue[Job] = asyncio.Queue()
        self.runs: list[int] = []
        self.worker = Worker(queue, {KIND: self.handle}, listen_url=url, owner="taker", lease_s=LONG_LEASE_S,
                             poll_s=0.05)

    async def handle(self, job: Job) -> Mapping[str, Any]:
        self.runs.append(job.job_id)
        await self.started.put(job)
        return {"by": "taker"}


async def test_a_sigkilled_workers_job_is_taken_over_before_its_lease_ends(
    store: Store, store_url: str, admin: asyncpg.Connection[asyncpg.Record],
) -> None:
    queue = JobQueue(store.pool)
    job, _ = await queue.enqueue(KIND, "k:killed", {})
    child = subprocess.Popen([sys.executable, "-c", CHILD, store_url], cwd=ROOT, stdout=subprocess.PIPE,
                             text=True)
    try:
        line = await asyncio.wait_for(asyncio.to_thread(child.stdout.readline), 60)  # type: ignore[union-attr]
        assert line.split() == ["started", str(job.job_id)]
        taker = Taker(queue, store_url)
        run = asyncio.create_task(taker.worker.run())
        try:
            child.send_signal(signal.SIGKILL)
            child.wait(10)
            taken = await asyncio.wait_for(taker.started.get(), 60)
            lease = await admin.fetchrow("SELECT lease_owner, lease_until > now() + interval '60 seconds' AS long "
                                         "FROM jobs WHERE job_id = $1", job.job_id)
        finally:
            await taker.worker.stop()
            await run
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(10)
    assert taken.job_id == job.job_id and taken.attempts == 2
    assert lease["lease_owner"] == "taker" and lease["long"]  # taken while the dead worker's lease still held
    done = await queue.get(job.job_id)
    assert done is not None and done.status == "done" and taker.runs == [job.job_id]


async def test_a_worker_that_lost_its_presence_stops_its_job_and_another_takes_it(
    store: Store, store_url: str, admin: asyncpg.Connection[asyncpg.Record],
) -> None:
    """The presence connection ends while the process lives (a network cut, a restarted
    pooler): the owner lock is free, so the job may be taken again; this worker stops it
    before it does anything more. Whoever takes it next (the other worker, or this one
    once its presence is back with a new lock) runs it once, as attempt 2."""
    queue = JobQueue(store.pool)
    job, _ = await queue.enqueue(KIND, "k:cut", {})
    started, cancelled, proceed = asyncio.Event(), asyncio.Event(), asyncio.Event()
    records: list[str] = []
    retaken: asyncio.Queue[Job] = asyncio.Queue()

    async def first(j: Job) -> Mapping[str, Any]:
        if j.attempts > 1:  # this worker took it again, with its new presence
            records.append("again")
            await retaken.put(j)
            return {}
        started.set()
        try:
            await proceed.wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise
        records.append("first")
        return {}

    a = Worker(queue, {KIND: first}, listen_url=store_url, owner="cut-off", lease_s=LONG_LEASE_S, poll_s=60)
    a_run = asyncio.create_task(a.run())
    taker = Taker(queue, store_url)
    b_run: asyncio.Task[None] | None = None
    try:
        await asyncio.wait_for(started.wait(), 30)
        assert a.owner_lock is not None
        ended = await admin.fetchval(
            "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND objid = $1::bigint::oid "
            "AND objsubid = 2 AND granted", a.owner_lock)
        assert ended is True
        await asyncio.wait_for(cancelled.wait(), 30)
        b_run = asyncio.create_task(taker.worker.run())
        got = [asyncio.ensure_future(taker.started.get()), asyncio.ensure_future(retaken.get())]
        done_, pending = await asyncio.wait(got, timeout=30, return_when=asyncio.FIRST_COMPLETED)
        for p in pending:
            p.cancel()
        assert done_, "nobody took the job again"
        taken = next(iter(done_)).result()
        proceed.set()
    finally:
        await a.stop()
        await taker.worker.stop()
        await asyncio.gather(a_run, *([b_run] if b_run else []))
    assert taken.job_id == job.job_id and taken.attempts == 2
    assert "first" not in records  # the cut-off run did nothing more
    assert len(taker.runs) + records.count("again") == 1  # attempt 2 ran once, somewhere
    done = await queue.get(job.job_id)
    assert done is not None and done.status == "done"
