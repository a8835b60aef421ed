"""Durable jobs with leases, idempotent Slack posts, and Slack event dedup.

Work accepted is a row in ``jobs`` until it is done. ``claim`` hands the oldest due
job to one worker (``FOR UPDATE SKIP LOCKED``) with a lease; the worker renews the
lease while it works. A job whose worker died is claimed again once its lease has
expired, or at once when the worker's owner lock is free: each worker holds a session
advisory lock (class ``OWNER_LOCK_CLASS``, its own key, recorded on the jobs it claims)
on a connection of its own, which PostgreSQL releases when that connection ends. A job
whose owner died after its last allowed attempt is not claimed again: ``give_up``
marks it failed. ``NOTIFY recon_jobs`` wakes idle workers when a job is queued.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import asyncpg

from bot.errors import StoreError
from bot.sqlfiles import Queries
from bot.store.db import Pool

log = logging.getLogger(__name__)
Q = Queries("bot.store", "sql")
NOTIFY_CHANNEL = "recon_jobs"
COUNTS_COMPACT_AFTER = 256  # job_counts deltas a reader folds into one row per status
DONE_CHANNEL = "recon_jobs_done"  # NOTIFY'd with the job id when a job ends (done or failed for good)
_DB_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError)
OWNER_LOCK_CLASS = 0x726A6F62  # b"rjob": the first key of every worker's owner lock
DIED_WHILE_RUNNING = ("the process running it stopped before it finished each time "
                      "(killed, out of memory, or cut off from the store)")

JobStatus = Literal["queued", "running", "done", "failed"]


@dataclass(frozen=True, slots=True)
class Job:
    job_id: int
    kind: str
    dedup_key: str
    payload: dict[str, Any]
    status: JobStatus
    attempts: int
    max_attempts: int
    lease_owner: str | None
    lease_until: datetime | None
    last_error: str | None
    incident_id: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Post:
    namespace: str
    post_key: str
    channel: str
    thread_ts: str | None
    ts: str | None
    state: Literal["posting", "posted"]


async def take_owner_lock(conn: asyncpg.Connection[asyncpg.Record]) -> int:
    """Hold an owner lock (``OWNER_LOCK_CLASS``, a random key) on ``conn`` until it ends;
    returns the key, for ``JobQueue.claim(owner_lock=...)``."""
    try:
        for _ in range(8):
            key = secrets.randbelow(2**31 - 2) + 1
            if await conn.fetchval(Q["job_owner_lock"], OWNER_LOCK_CLASS, key):
                return key
    except _DB_ERRORS as exc:
        raise StoreError(f"taking the worker's owner lock failed: {exc}") from exc
    raise StoreError("no free owner-lock key after 8 tries")


def job_namespace(job_id: int) -> str:
    """The Slack-post namespace of a /recon job's thread."""
    return f"job:{job_id}"


class JobQueue:
    """The jobs table, as workers and handlers use it."""

    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    async def _run(self, name: str, method: str, *args: Any) -> Any:
        try:
            return await getattr(self._pool, method)(Q[name], *args)
        except _DB_ERRORS as exc:
            raise StoreError(f"store query {name} failed: {exc}") from exc

    async def enqueue(self, kind: str, dedup_key: str, payload: Mapping[str, Any], *,
                      max_attempts: int = 5) -> tuple[Job, bool]:
        """``(job, created)``: a new job, or the active one with the same dedup key."""
        for _ in range(5):
            row = await self._run("job_enqueue", "fetchrow", kind, dedup_key, dict(payload), max_attempts, 0.0)
            if row is not None:
                await self._notify()
                return Job(**dict(row)), True
            row = await self._run("job_find_active", "fetchrow", dedup_key)
            if row is not None:
                return Job(**dict(row)), False
        raise StoreError(f"could not enqueue or find an active job for {dedup_key}")

    async def _notify(self) -> None:
        try:
            await self._pool.execute(f"NOTIFY {NOTIFY_CHANNEL}")
        except _DB_ERRORS:
            log.warning("NOTIFY %s failed; workers will find the job on their next poll", NOTIFY_CHANNEL)

    async def claim(self, owner: str, lease_s: float, kinds: Sequence[str], *,
                    owner_lock: int | None = None, running: Sequence[int] = ()) -> Job | None:
        """The next due job of these kinds, now this owner's. ``owner_lock``: the key of the
        owner lock this worker holds (``OWNER_LOCK_CLASS``), None: it holds none;
        ``running``: the jobs this worker still runs (not taken again, even if their lease
        ran out)."""
        row = await self._run("job_claim", "fetchrow", owner, float(lease_s), list(kinds), owner_lock,
                              OWNER_LOCK_CLASS, list(running))
        return Job(**dict(row)) if row is not None else None

    async def give_up(self, kinds: Sequence[str], reason: str = DIED_WHILE_RUNNING) -> list[Job]:
        """Fail for good the running jobs whose owner died on their last allowed attempt."""
        rows = await self._run("job_give_up", "fetch", list(kinds), OWNER_LOCK_CLASS, reason)
        jobs = [Job(**dict(r)) for r in rows]
        for job in jobs:
            await self._notify_done(job.job_id)
        return jobs

    async def thread_of(self, job_id: int) -> tuple[str, str] | None:
        """``(channel, thread_ts)`` of the thread the job posted in (None: it posted nothing)."""
        row = await self._run("job_thread", "fetchrow", job_id)
        return (str(row["channel"]), str(row["thread_ts"])) if row is not None else None

    async def next_due_in(self, kinds: Sequence[str]) -> float | None:
        """Seconds until the next delayed job of these kinds is due (None: none waiting)."""
        v = await self._run("job_next_due", "fetchval", list(kinds))
        return float(v) if v is not None else None

    async def renew(self, job_id: int, owner: str, lease_s: float) -> bool:
        return await self._run("job_renew", "fetchval", job_id, owner, float(lease_s)) is not None

    async def finish(self, job_id: int, owner: str, result: Mapping[str, Any] | None = None) -> bool:
        done = await self._run("job_finish", "fetchval", job_id, owner, dict(result or {})) is not None
        if done:
            await self._notify_done(job_id)
        return done

    async def _notify_done(self, job_id: int) -> None:
        try:
            await self._pool.execute("SELECT pg_notify($1, $2)", DONE_CHANNEL, str(job_id))
        except _DB_ERRORS:
            log.debug("NOTIFY %s failed", DONE_CHANNEL)

    async def fail(self, job_id: int, owner: str, error: str, retry_in_s: float) -> str | None:
        """Record a failed attempt; returns the new status (queued: retried later; failed)."""
        status: str | None = await self._run("job_fail", "fetchval", job_id, owner, error[:4000], float(retry_in_s))
        if status == "failed":
            await self._notify_done(job_id)
        return status

    async def release(self, job_id: int, owner: str) -> bool:
        released = await self._run("job_release", "fetchval", job_id, owner) is not None
        if released:
            await self._notify()
        return released

    async def get(self, job_id: int) -> Job | None:
        row = await self._run("job_get", "fetchrow", job_id)
        return Job(**dict(row)) if row is not None else None

    async def find_active(self, dedup_key: str) -> Job | None:
        row = await self._run("job_find_active", "fetchrow", dedup_key)
        return Job(**dict(row)) if row is not None else None

    async def set_incident(self, job_id: int, incident_id: str) -> None:
        await self._run("job_set_incident", "execute", job_id, incident_id)

    async def counts(self) -> dict[str, int]:
        """Jobs by status, from the deltas that migration 012's triggers keep (no count over
        jobs); when it summed more than ``COUNTS_COMPACT_AFTER`` deltas it folds them."""
        rows = await self._run("job_counts", "fetch")
        if sum(int(r["rows"]) for r in rows) > COUNTS_COMPACT_AFTER:
            await self.compact_counts()
        return {r["status"]: int(r["n"]) for r in rows if r["n"]}

    async def compact_counts(self) -> None:
        await self._run("job_counts_compact", "execute")

    # ------------------------------------------------------------ Slack posts

    async def post_get(self, namespace: str, key: str) -> Post | None:
        row = await self._run("post_get", "fetchrow", namespace, key)
        return Post(**dict(row)) if row is not None else None

    async def post_begin(self, namespace: str, key: str, channel: str, thread_ts: str | None,
                         job_id: int | None = None) -> Post:
        row = await self._run("post_begin", "fetchrow", namespace, key, channel, thread_ts, job_id)
        return Post(**dict(row))

    async def post_done(self, namespace: str, key: str, ts: str) -> None:
        await self._run("post_done", "execute", namespace, key, ts)

    async def posts(self, namespace: str) -> list[Post]:
        return [Post(**dict(r)) for r in await self._run("posts_by_job", "fetch", namespace)]

    # ------------------------------------------------------------ Slack events

    async def accept_event(self, event_id: str, retry_num: int, kind: str, dedup_key: str,
                           payload: Mapping[str, Any]) -> tuple[Job | None, bool]:
        """Record a Slack event and queue its job in one transaction.

        ``(None, False)``: the event was seen before (a retry, or another process got
        it): nothing to do. Otherwise ``(job, created)`` as ``enqueue``. If the process
        dies before the commit nothing is recorded, so Slack's retry is handled.
        """
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                first = await conn.fetchval(Q["event_seen"], event_id, retry_num)
                if first is not True:
                    return None, False
                row = await conn.fetchrow(Q["job_enqueue"], kind, dedup_key, dict(payload), 5, 0.0)
                created = row is not None
                if row is None:
                    row = await conn.fetchrow(Q["job_find_active"], dedup_key)
                job = Job(**dict(row)) if row is not None else None
        except _DB_ERRORS as exc:
            raise StoreError(f"recording Slack event {event_id} failed: {exc}") from exc
        if created:
            await self._notify()
        return job, created

    async def event_known(self, event_id: str) -> bool:
        """True when the event was recorded as handled before."""
        return bool(await self._run("event_known", "fetchval", event_id))

    async def first_delivery(self, event_id: str, retry_num: int = 0) -> bool:
        """True when this delivery of the event is the first one seen (handle it)."""
        return await self._run("event_seen", "fetchval", event_id, retry_num) is True
