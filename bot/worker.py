"""Workers that run durable jobs.

Each ``recon serve`` process runs one ``Worker`` with a few job slots. A worker claims
due jobs (its own leases), renews each lease while the job runs, and marks it done or
failed (failed attempts are retried with backoff until ``max_attempts``). Idle workers
wait on ``LISTEN recon_jobs`` with a poll as fallback, so a queued job starts at once.
On shutdown a worker stops claiming, gives running jobs a grace period to finish, and
releases the rest so another process takes them immediately.

Failover: the LISTEN connection is also the worker's presence. On it the worker holds a
session advisory lock (``OWNER_LOCK_CLASS``, a key of its own) that its claims record;
when the process dies PostgreSQL ends the connection and frees the lock, and another
worker takes its running jobs at once rather than after the lease. A job whose owner
died on its last allowed attempt is given up (``on_give_up`` tells its thread).

A job that is no longer this worker's is stopped (its task cancelled) before it posts or
records anything more: when a renewal finds another owner, when the lease ran out
without a renewal, or when the presence connection is lost (its lock is free, so
another worker may take the job at once).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeAlias

import asyncpg

from bot.errors import StoreError
from bot.logs import bind
from bot.metrics import Metrics
from bot.store.jobs import NOTIFY_CHANNEL, Job, JobQueue, take_owner_lock

log = logging.getLogger(__name__)

# a job's consumer; a worker's ``handlers`` map job kind -> consumer (``recon serve``'s
# registry, saying who queues and who consumes each kind: bot.server.consumers)
JobHandler = Callable[[Job], Awaitable[Mapping[str, Any] | None]]
GiveUpHandler = Callable[[Job], Awaitable[None]]
PresenceConn: TypeAlias = "asyncpg.Connection[asyncpg.Record]"
PRESENCE_RETRY_S = 10.0  # a lost presence connection is opened again at most this often
MAX_RETRY_AFTER_S = 6 * 3600.0  # the longest wait an upstream's Retry-After can set


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def backoff_s(attempts: int) -> float:
    return float(min(300, 2 ** max(0, attempts - 1)))


def retry_in_s(attempts: int, exc: BaseException) -> float:
    """When to try a failed job again: the delay the failure asked for (its
    ``retry_after_s``: a tracker's ``Retry-After``, capped), else the backoff."""
    asked = getattr(exc, "retry_after_s", None)
    if isinstance(asked, int | float) and not isinstance(asked, bool) and asked == asked:  # not NaN
        return float(min(MAX_RETRY_AFTER_S, max(0.0, asked)))
    return backoff_s(attempts)


class Worker:
    def __init__(self, queue: JobQueue, handlers: Mapping[str, JobHandler], *, listen_url: str | None,
                 owner: str | None = None, lease_s: float = 30.0, slots: int = 4, poll_s: float = 2.0,
                 grace_s: float = 10.0, metrics: Metrics | None = None,
                 before_claim: Callable[[], Awaitable[None]] | None = None,
                 on_give_up: GiveUpHandler | None = None) -> None:
        self.queue = queue
        self.handlers = dict(handlers)
        self.listen_url = listen_url
        self.owner = owner or worker_id()
        self.lease_s = lease_s
        self.slots = slots
        self.poll_s = poll_s
        self.grace_s = grace_s
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._running: dict[int, asyncio.Task[None]] = {}
        self.completed = 0
        self.failed = 0
        self.metrics = metrics
        # awaited before each claim: lets more urgent work in this process go first (the
        # alert intake in a storm); the job stays queued for other processes meanwhile
        self.before_claim = before_claim
        # told of each job given up here (its owner died on its last attempt): its thread says so
        self.on_give_up = on_give_up
        self.owner_lock: int | None = None  # the key of the owner lock held on the presence connection
        self._presence: PresenceConn | None = None
        self._presence_retry_at = 0.0
        self._lost: set[int] = set()  # jobs stopped here because they are no longer ours
        self.given_up = 0

    @property
    def busy(self) -> int:
        return len(self._running)

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        """Claim and run jobs until ``stop()``; then finish or release what runs."""
        await self._listen()
        try:
            while not self._stopping.is_set():
                if self._presence is None and self.listen_url \
                        and asyncio.get_running_loop().time() >= self._presence_retry_at:
                    await self._listen()
                await self._give_up()
                claimed = False
                while len(self._running) < self.slots and not self._stopping.is_set():
                    if self.before_claim is not None:
                        await self.before_claim()
                    job = await self._claim()
                    if job is None:
                        break
                    claimed = True
                    self._running[job.job_id] = asyncio.create_task(self._execute(job), name=f"job-{job.job_id}")
                if claimed:
                    continue
                self._wake.clear()
                wait = self.poll_s
                with contextlib.suppress(StoreError):
                    due = await self.queue.next_due_in(list(self.handlers))
                    if due is not None:
                        wait = max(0.01, min(wait, due))  # a delayed job (a gathering storm) starts on time
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=wait)
        finally:
            await self._drain()
            presence, self._presence = self._presence, None
            if presence is not None:
                presence.remove_termination_listener(self._presence_lost)
                with contextlib.suppress(Exception):
                    await presence.close()

    async def _claim(self) -> Job | None:
        lock = self.owner_lock
        try:
            job = await self.queue.claim(self.owner, self.lease_s, list(self.handlers), owner_lock=lock,
                                         running=list(self._running))
            if job is not None and lock is not None and self.owner_lock != lock:
                # the presence connection ended while claiming: the job's lock is free
                # already, so another worker may take it; hand it back untouched
                await self.queue.release(job.job_id, self.owner)
                return None
        except StoreError as exc:
            log.warning("claiming a job failed: %s", exc)
            return None
        return job

    async def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    async def _listen(self) -> None:
        """Open the presence connection: LISTEN for queued jobs, hold the owner lock."""
        if not self.listen_url:
            return
        conn: PresenceConn | None = None
        try:
            conn = await asyncpg.connect(self.listen_url, timeout=10)
            await conn.add_listener(NOTIFY_CHANNEL, lambda *_: self._wake.set())
            self.owner_lock = await take_owner_lock(conn)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, StoreError) as exc:
            self._presence_retry_at = asyncio.get_running_loop().time() + PRESENCE_RETRY_S
            log.warning("LISTEN %s failed (%s); polling every %.1f s, failover after the lease",
                        NOTIFY_CHANNEL, exc, self.poll_s)
            if conn is not None:
                conn.terminate()
            self.owner_lock = None
            return
        conn.add_termination_listener(self._presence_lost)
        self._presence = conn

    def _presence_lost(self, conn: object) -> None:
        """The presence connection ended: the owner lock is free, so any other worker may
        take this worker's running jobs now. Stop them; claim on a new lock later."""
        if conn is not self._presence:
            return
        self._presence, self.owner_lock = None, None
        if self._stopping.is_set():
            return
        log.warning("the worker's store connection was lost; stopping its %d running job(s), "
                    "which other workers may take over", len(self._running))
        for job_id, task in list(self._running.items()):
            self._lose(job_id, task)
        self._wake.set()

    def _lose(self, job_id: int, task: asyncio.Task[None]) -> None:
        self._lost.add(job_id)
        task.cancel()

    async def _give_up(self) -> None:
        try:
            jobs = await self.queue.give_up(list(self.handlers))
        except StoreError as exc:
            log.warning("giving up jobs past their attempts failed: %s", exc)
            return
        for job in jobs:
            self.given_up += 1
            log.error("job %s (%s) given up: %s", job.job_id, job.kind, job.last_error)
            if self.metrics is not None:
                self.metrics.jobs_failed.labels(job.kind).inc()
            if self.on_give_up is not None:
                try:
                    await self.on_give_up(job)
                except Exception:
                    log.exception("job %s: telling its thread that it was given up failed", job.job_id)

    async def _drain(self) -> None:
        if not self._running:
            return
        log.info("waiting up to %.0f s for %d running job(s)", self.grace_s, len(self._running))
        _, pending = await asyncio.wait(list(self._running.values()), timeout=self.grace_s)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending)

    async def _execute(self, job: Job) -> None:
        bind(job_id=job.job_id, incident_id=job.incident_id, worker=self.owner)
        task = asyncio.current_task()
        assert task is not None
        heartbeat = asyncio.create_task(self._heartbeat(job, task))
        try:
            log.info("job %s (%s) started, attempt %d", job.job_id, job.kind, job.attempts)
            if self.metrics is not None:
                self.metrics.jobs_started.labels(job.kind).inc()
                if job.attempts > 1:
                    self.metrics.jobs_retried.labels(job.kind).inc()
            result = await self.handlers[job.kind](job)
            heartbeat.cancel()
            if await self.queue.finish(job.job_id, self.owner, result):
                self.completed += 1
                if self.metrics is not None:
                    self.metrics.jobs_done.labels(job.kind).inc()
                log.info("job %s done", job.job_id)
            else:
                log.warning("job %s finished here but was no longer this worker's", job.job_id)
        except asyncio.CancelledError:
            if job.job_id in self._lost:
                log.warning("job %s stopped: it is no longer this worker's (another worker may run it)",
                            job.job_id)
            else:
                with contextlib.suppress(Exception):
                    await asyncio.shield(self.queue.release(job.job_id, self.owner))
                log.info("job %s released for another worker", job.job_id)
            raise
        except Exception as exc:
            await self._failed(job, exc)
        finally:
            heartbeat.cancel()
            self._lost.discard(job.job_id)
            self._running.pop(job.job_id, None)
            self._wake.set()

    async def _failed(self, job: Job, exc: Exception) -> None:
        self.failed += 1
        if self.metrics is not None:
            self.metrics.jobs_failed.labels(job.kind).inc()
        status = None
        with contextlib.suppress(StoreError):
            status = await self.queue.fail(job.job_id, self.owner, f"{type(exc).__name__}: {exc}",
                                           retry_in_s(job.attempts, exc))
        log.exception("job %s attempt %d failed (%s)", job.job_id, job.attempts, status or "unrecorded",
                      exc_info=exc)

    async def _heartbeat(self, job: Job, task: asyncio.Task[None]) -> None:
        """Renew the lease every third of it; stop the job once it is not ours: a renewal
        found another owner, or the lease ran out before one succeeded."""
        loop = asyncio.get_running_loop()
        # the lease began before the claim returned: count it from a little earlier
        expires = loop.time() + self.lease_s * 0.9
        while True:
            await asyncio.sleep(max(0.0, min(self.lease_s / 3, expires - loop.time())))
            try:
                if not await self.queue.renew(job.job_id, self.owner, self.lease_s):
                    log.warning("job %s: lost its lease (another worker has it, or it ended)", job.job_id)
                    self._lose(job.job_id, task)
                    return
                expires = loop.time() + self.lease_s * 0.9
            except StoreError as exc:
                if loop.time() >= expires:
                    log.warning("job %s: the lease ran out unrenewed (%s); stopping it", job.job_id, exc)
                    self._lose(job.job_id, task)
                    return
                log.warning("job %s: renewing the lease failed: %s", job.job_id, exc)

