"""Durable jobs on a real store: the attempt cap holds when a job's process dies, a job
given up says so in its thread, and a job whose lease was lost stops before it does
anything more."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import Any

import asyncpg
import pytest_asyncio
from slack_sdk.web.async_client import AsyncWebClient

from bot.flows.given_up import report_given_up
from bot.store.jobs import Job, JobQueue
from bot.store.store import Store
from bot.worker import Worker
from tests.standins.slack import SlackStandIn

KIND = "test_job"


@pytest_asyncio.fixture
async def admin(store_url: str) -> AsyncIterator[asyncpg.Connection[asyncpg.Record]]:
    conn: asyncpg.Connection[asyncpg.Record] = await asyncpg.connect(store_url)
    try:
        yield conn
    finally:
        await conn.close()


async def expire_lease(admin: asyncpg.Connection[asyncpg.Record], job_id: int, owner: str | None = None) -> None:
    """What a dead (or stalled) worker leaves behind: its lease runs out unrenewed."""
    await admin.execute("UPDATE jobs SET lease_until = now() - interval '1 second' "
                        "WHERE job_id = $1 AND ($2::text IS NULL OR lease_owner = $2)", job_id, owner)


async def test_a_job_whose_process_dies_is_not_claimed_past_its_attempts(
    store: Store, admin: asyncpg.Connection[asyncpg.Record],
) -> None:
    queue = JobQueue(store.pool)
    job, _ = await queue.enqueue(KIND, "k:oom", {}, max_attempts=2)
    for attempt, owner in enumerate(("replica-a", "replica-b"), start=1):
        claimed = await queue.claim(owner, 30, [KIND])
        assert claimed is not None and claimed.job_id == job.job_id and claimed.attempts == attempt
        await expire_lease(admin, job.job_id)  # the replica died (out of memory) mid-job
    assert await queue.claim("replica-c", 30, [KIND]) is None  # a third replica is not crashed too
    given_up = await queue.give_up([KIND])
    assert [g.job_id for g in given_up] == [job.job_id]
    after = await queue.get(job.job_id)
    assert after is not None and after.status == "failed" and after.attempts == 2
    assert after.last_error is not None and after.last_error.startswith("given up after 2 attempts: ")
    assert "stopped before it finished" in after.last_error
    assert await queue.give_up([KIND]) == []  # given up once
    assert await queue.find_active("k:oom") is None  # the key is free for new work


async def test_give_up_leaves_live_jobs_and_jobs_with_attempts_left(
    store: Store, admin: asyncpg.Connection[asyncpg.Record],
) -> None:
    queue = JobQueue(store.pool)
    live, _ = await queue.enqueue(KIND, "k:live", {}, max_attempts=1)
    retry, _ = await queue.enqueue(KIND, "k:retry", {}, max_attempts=3)
    assert (await queue.claim("w", 30, [KIND])) is not None
    assert (await queue.claim("w", 30, [KIND])) is not None
    await expire_lease(admin, retry.job_id)
    assert await queue.give_up([KIND]) == []  # live: its lease holds; retry: 2 attempts left
    claimed = await queue.claim("w2", 30, [KIND])
    assert claimed is not None and claimed.job_id == retry.job_id and claimed.attempts == 2
    got = await queue.get(live.job_id)
    assert got is not None and got.status == "running"


async def test_a_job_given_up_says_so_in_its_thread_once(
    store: Store, admin: asyncpg.Connection[asyncpg.Record], slack_standin: SlackStandIn,
) -> None:
    queue = JobQueue(store.pool)
    client = AsyncWebClient(token="xoxb-test", base_url=slack_standin.url)
    job, _ = await queue.enqueue(KIND, "k:thread", {}, max_attempts=1)
    assert await queue.claim("replica-a", 30, [KIND]) is not None
    parent = await client.chat_postMessage(channel="C0JOBS", text="recon · diagnosing <x> & co")
    await queue.post_begin(f"job:{job.job_id}", "parent", "C0JOBS", None, job.job_id)
    await queue.post_done(f"job:{job.job_id}", "parent", str(parent["ts"]))
    await expire_lease(admin, job.job_id)
    gave_up: list[Job] = []

    async def on_give_up(j: Job) -> None:
        gave_up.append(j)
        await report_given_up(j, queue, client)

    worker = Worker(queue, {KIND: _never}, listen_url=None, poll_s=60, on_give_up=on_give_up)
    await worker._give_up()
    assert [j.job_id for j in gave_up] == [job.job_id] and worker.given_up == 1
    replies = slack_standin.thread("C0JOBS", str(parent["ts"]))[1:]
    assert len(replies) == 1
    assert "gave up on this test_job job" in replies[0].text and "after 1 attempt:" in replies[0].text
    assert "stopped before it finished" in replies[0].text
    # reported again (a second claimer, a retry): still one reply
    assert await report_given_up(gave_up[0], queue, client) == replies[0].ts
    assert len(slack_standin.thread("C0JOBS", str(parent["ts"]))) == 2


async def test_a_job_given_up_without_a_thread_posts_nothing(store: Store, slack_standin: SlackStandIn) -> None:
    queue = JobQueue(store.pool)
    job, _ = await queue.enqueue(KIND, "k:silent", {}, max_attempts=1)
    client = AsyncWebClient(token="xoxb-test", base_url=slack_standin.url)
    assert await report_given_up(job, queue, client) is None
    assert slack_standin.calls_to("chat.postMessage") == []


async def _never(job: Job) -> Mapping[str, Any] | None:
    await asyncio.Event().wait()
    return None


async def test_a_job_that_lost_its_lease_stops_before_doing_more(
    store: Store, admin: asyncpg.Connection[asyncpg.Record],
) -> None:
    """Two workers on one store: A's job is taken by B after A's lease ran out (A was
    stalled); A's next renewal finds B the owner, and A's job is stopped at once."""
    queue = JobQueue(store.pool)
    job, _ = await queue.enqueue(KIND, "k:lease", {})
    a_started, a_cancelled, b_started, proceed = (asyncio.Event() for _ in range(4))
    records: list[str] = []

    async def a_handler(j: Job) -> Mapping[str, Any]:
        a_started.set()
        try:
            await proceed.wait()
        except asyncio.CancelledError:
            a_cancelled.set()
            raise
        records.append("A")  # what A would post or record after losing the job
        return {}

    async def b_handler(j: Job) -> Mapping[str, Any]:
        b_started.set()
        await proceed.wait()
        records.append("B")
        return {"by": "B"}

    a = Worker(queue, {KIND: a_handler}, listen_url=None, owner="worker-a", lease_s=1.5, poll_s=60)
    b = Worker(queue, {KIND: b_handler}, listen_url=None, owner="worker-b", lease_s=30, poll_s=0.05)
    a_run = asyncio.create_task(a.run())
    await asyncio.wait_for(a_started.wait(), 10)
    b_run = asyncio.create_task(b.run())
    try:
        while not b_started.is_set():  # A renews meanwhile: expire until B gets it
            await expire_lease(admin, job.job_id, owner="worker-a")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(b_started.wait(), 0.5)
        await asyncio.wait_for(a_cancelled.wait(), 10)
        proceed.set()
    finally:
        await a.stop()
        await b.stop()  # B finishes its job first (the grace period)
        await asyncio.gather(a_run, b_run)
    done = await admin.fetchrow("SELECT status, attempts, result->>'by' AS by FROM jobs WHERE job_id = $1", job.job_id)
    assert records == ["B"]
    assert done["status"] == "done" and done["attempts"] == 2 and done["by"] == "B"
    assert a.completed == 0 and b.completed == 1
