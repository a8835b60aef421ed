"""Workers that run durable jobs.

Each ``recon serve`` process runs one ``Worker`` with a few job slots. A worker claims
due jobs (its own leases), renews each lease while the job runs, and marks it done or
failed (failed attempts are retried with backoff until ``max_attempts``). Idle workers
wait on ``LISTEN recon_jobs`` with a poll as fallback, so a queued job starts at once.
On shutdown a worker stops claiming, gives running jobs a grace period to finish, and
releases the rest so another process takes them immediately.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import asyncpg

from bot.errors import StoreError
from bot.logs import bind
from bot.metrics import Metrics
from bot.store.jobs import NOTIFY_CHANNEL, Job, JobQueue

log = logging.getLogger(__name__)

# a job's consumer; a worker's ``handlers`` map job kind -> consumer (``recon serve``'s
# registry, saying who queues and who consumes each kind: bot.server.consumers)
JobHandler = Callable[[Job], Awaitable[Mapping[str, Any] | None]]


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def backoff_s(attempts: int) -> float:
    return float(min(300, 2 ** max(0, attempts - 1)))


class Worker:
    def __init__(self, queue: JobQueue, handlers: Mapping[str, JobHandler], *, listen_url: str | None,
                 owner: str | None = None, lease_s: float = 30.0, slots: int = 4, poll_s: float = 2.0,
                 grace_s: float = 10.0, metrics: Metrics | None = None,
                 before_claim: Callable[[], Awaitable[None]] | None = None) -> None:
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

    @property
    def busy(self) -> int:
        return len(self._running)

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        """Claim and run jobs until ``stop()``; then finish or release what runs."""
        listener = await self._listen()
        try:
            while not self._stopping.is_set():
                claimed = False
                while len(self._running) < self.slots and not self._stopping.is_set():
                    if self.before_claim is not None:
                        await self.before_claim()
                    try:
                        job = await self.queue.claim(self.owner, self.lease_s, list(self.handlers))
                    except StoreError as exc:
                        log.warning("claiming a job failed: %s", exc)
                        break
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
            if listener is not None:
                with contextlib.suppress(Exception):
                    await listener.close()

    async def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    async def _listen(self) -> asyncpg.Connection[asyncpg.Record] | None:
        if not self.listen_url:
            return None
        try:
            conn: asyncpg.Connection[asyncpg.Record] = await asyncpg.connect(self.listen_url)
            await conn.add_listener(NOTIFY_CHANNEL, lambda *_: self._wake.set())
            return conn
        except (OSError, asyncpg.PostgresError) as exc:
            log.warning("LISTEN %s failed (%s); polling every %.1f s", NOTIFY_CHANNEL, exc, self.poll_s)
            return None

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
        heartbeat = asyncio.create_task(self._heartbeat(job))
        try:
            log.info("job %s (%s) started, attempt %d", job.job_id, job.kind, job.attempts)
            if self.metrics is not None:
                self.metrics.jobs_started.labels(job.kind).inc()
                if job.attempts > 1:
                    self.metrics.jobs_retried.labels(job.kind).inc()
            result = await self.handlers[job.kind](job)
            await self.queue.finish(job.job_id, self.owner, result)
            self.completed += 1
            if self.metrics is not None:
                self.metrics.jobs_done.labels(job.kind).inc()
            log.info("job %s done", job.job_id)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await asyncio.shield(self.queue.release(job.job_id, self.owner))
            log.info("job %s released for another worker", job.job_id)
            raise
        except Exception as exc:
            self.failed += 1
            if self.metrics is not None:
                self.metrics.jobs_failed.labels(job.kind).inc()
            status = None
            with contextlib.suppress(StoreError):
                status = await self.queue.fail(job.job_id, self.owner, f"{type(exc).__name__}: {exc}",
                                               backoff_s(job.attempts))
            log.exception("job %s attempt %d failed (%s)", job.job_id, job.attempts, status or "unrecorded")
        finally:
            heartbeat.cancel()
            self._running.pop(job.job_id, None)
            self._wake.set()

    async def _heartbeat(self, job: Job) -> None:
        while True:
            await asyncio.sleep(self.lease_s / 3)
            try:
                if not await self.queue.renew(job.job_id, self.owner, self.lease_s):
                    log.warning("job %s: lost its lease", job.job_id)
                    return
            except StoreError as exc:
                log.warning("job %s: renewing the lease failed: %s", job.job_id, exc)
