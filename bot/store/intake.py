"""Group commit of the alert intake: every notification that arrives while a batch is
being written goes into the next batch, one call of ``recon_alert_intake`` (migration
008): one round trip, one transaction, one commit for all of them.

Nothing waits on purpose: a notification that finds the writer idle is written at once,
alone. Under a storm the batches grow by themselves (50 requests in flight make batches
of tens), so the cost per notification falls as the load rises instead of queueing for
connections. Each caller's ``submit`` returns only once its batch has committed: the
webhook answers after the notification is stored durably, as before.

The writer holds a connection of its own pool (``pool``; ``recon serve`` gives it a
pool of one connection beside the store's), so jobs that hold store connections for
their group locks never make the intake wait.

Before the intake, the webhooks parse large bodies in ``Turns``: one at a time, with
a pass of the event loop between two, so the batches' replies are not kept waiting.

Failures stay with whoever caused them:

- a batch the database refuses is written again one item at a time, so one notification
  it cannot store (``\\u0000`` in a label or a common annotation, which jsonb refuses; a
  value over one of its limits) fails alone, as ``BadInput`` (SQLSTATE class 22 or 54),
  and the rest are stored (a group key is bounded before it gets here:
  ``bounded_group_key``);
- anything else (the store unreachable, a timeout) fails the items of that batch with
  ``StoreError``, which the webhook answers with 503 so that the sender retries;
- a caller that goes away (its request cancelled) does not cancel the write: its
  notification is stored with its batch, and a retry of it is a repeat.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import asyncpg

from bot.alerts.model import NotificationDigest
from bot.alerts.parse import bounded_group_key
from bot.errors import BadInput, StoreError
from bot.store.db import Conn, Pool

log = logging.getLogger(__name__)
_T = TypeVar("_T")

_DB_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError)
_CALL = "SELECT * FROM recon_alert_intake($1::jsonb, $2::text[], $3, $4, $5, $6, $7, $8)"


@dataclass(slots=True)
class _Pending:
    item: Mapping[str, Any]
    payload_json: str
    done: asyncio.Future[asyncpg.Record] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future())


@dataclass(frozen=True, slots=True)
class IntakeParams:
    """What the intake function decides by (see ``AlertStore``)."""

    reopen_s: float
    storm_threshold: int
    storm_window_s: float
    storm_gather_s: float
    notify_channel: str
    storm_lock_space: int


def intake_item(n: NotificationDigest, *, channel: str | None, route: str, subject: Mapping[str, Any],
                anchor_ts: str | None = None, event_id: str | None = None, retry_num: int = 0) -> dict[str, Any]:
    """One element of ``recon_alert_intake``'s ``items``: what 008's header lists."""
    return {
        "source": n.source, "group_key": bounded_group_key(n.group_key), "status": n.status,
        "alertname": n.labels.get("alertname"), "severity": n.severity, "labels": n.labels,
        "annotations": n.common_annotations,
        "subject": dict(subject), "channel": channel or None, "route": route, "anchor_ts": anchor_ts,
        "firing": n.firing, "alerts": n.alerts, "event_id": event_id or None, "retry_num": retry_num,
    }


# Two notifications of one group (its open, then its resolve) in a channel of their own,
# with a storm threshold of 1: the open, storm and resolve paths of recon_alert_intake run.
_WARM_UP_ITEMS = [
    intake_item(NotificationDigest(source="alertmanager", group_key="recon:warm-up", status=status,
                                   severity="none", labels={"alertname": "recon warm-up"}, common_annotations={},
                                   alerts=1, firing=int(status == "firing")),
                channel="recon:warm-up", route="warm-up", subject={})
    for status in ("firing", "resolved")
]


class _RolledBack(Exception):
    pass


async def warm_up(conn: Conn) -> None:
    """Run ``recon_alert_intake`` once on ``conn`` in a transaction that is rolled back:
    nothing is stored (identity numbers are used up), and the connection has the
    function compiled and its statements planned. A new connection's first batch costs
    about five times a warm one's (16 against 3 ms here), and a storm's first batch holds
    up every notification behind it. ``recon serve`` runs it on every new intake
    connection (``connect_pool(warm=...)``) and keeps that connection open."""
    try:
        async with conn.transaction():
            await conn.fetch(_CALL, _WARM_UP_ITEMS, ["{}", "{}"], 0.0, 1, 1.0, 0.0, "recon_warm_up", 0)
            raise _RolledBack
    except _RolledBack:
        pass
    except asyncpg.PostgresError as exc:  # the intake says more when it is used; a start goes on
        log.warning("could not warm up the alert intake's connection (%s: %s); its first batch will be slower",
                    type(exc).__name__, exc)


class IntakeWriter:
    """Writes submitted notifications in batches (group commit); see the module doc."""

    def __init__(self, pool: Pool, params: IntakeParams, *, max_batch: int = 256,
                 max_batch_bytes: int = 256 * 1024, timeout_s: float = 15.0) -> None:
        self._pool = pool
        self.params = params
        self.max_batch = max_batch
        self.max_batch_bytes = max_batch_bytes
        self.timeout_s = timeout_s
        self._queue: list[_Pending] = []
        self._task: asyncio.Task[None] | None = None
        self._last_submit = float("-inf")  # loop time
        self.batches = 0  # batches written (for tests and /metrics)
        self.largest_batch = 0

    async def submit(self, item: Mapping[str, Any], payload_json: str) -> asyncpg.Record:
        """Store one notification with the next batch; its row of ``recon_alert_intake``.

        Raises ``BadInput`` when the database refuses this notification's payload and
        ``StoreError`` when the batch could not be stored."""
        p = _Pending(item, payload_json)
        self._last_submit = asyncio.get_running_loop().time()
        self._queue.append(p)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._drain(), name="recon-alert-intake")
        # shielded: a caller that goes away leaves its notification in the batch
        return await asyncio.shield(p.done)

    async def quiet(self, idle_s: float = 0.1, at_most_s: float = 2.0) -> None:
        """Return once nothing has been submitted for ``idle_s`` and nothing is being
        written, or after ``at_most_s`` at the latest. The worker waits for this before it
        claims a job: in a storm, storing what arrives (and answering the senders) comes
        before triage, which starts at most ``at_most_s`` later than it would have."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + at_most_s
        while True:
            now = loop.time()
            writing = bool(self._queue) or (self._task is not None and not self._task.done())
            wait = 0.0 if writing else self._last_submit + idle_s - now
            if (not writing and wait <= 0) or now >= deadline:
                return
            # a debounce: re-checked after the quiet time the last arrival leaves, at most
            await asyncio.sleep(min(max(wait, idle_s / 4), deadline - now))

    async def aclose(self) -> None:
        """Wait for the batches still being written (at shutdown, before the pool closes)."""
        while self._task is not None and not self._task.done():
            await asyncio.wait({self._task})

    async def _drain(self) -> None:
        try:
            while self._queue:
                acquired = False
                try:
                    async with self._pool.acquire() as conn:
                        acquired = True
                        # one connection for as long as notifications keep arriving
                        while self._queue:
                            await self._write(conn, self._next_batch())
                except _DB_ERRORS as exc:
                    if not acquired:  # the store is unreachable: nothing queued can be stored now
                        self._fail(self._take_all(), StoreError(f"storing alert notifications failed: {exc}"))
                    # else the connection broke under a batch (which has failed): the rest try another
        except BaseException as exc:
            # cancelled at shutdown: nobody may wait forever
            self._fail(self._take_all(), StoreError(f"the alert intake stopped: {type(exc).__name__}"))
            raise

    def _next_batch(self) -> list[_Pending]:
        """The oldest waiting notifications, up to ``max_batch`` of them or (but at least
        one) ``max_batch_bytes`` of payload: large payloads go in several batches, so the
        first are stored (and answered) while the later ones are still being read."""
        size, n = 0, 0
        for p in self._queue[:self.max_batch]:
            size += len(p.payload_json)
            if n and size > self.max_batch_bytes:
                break
            n += 1
        batch, self._queue = self._queue[:n], self._queue[n:]
        return batch

    def _take_all(self) -> list[_Pending]:
        out, self._queue = self._queue, []
        return out

    async def _write(self, conn: Conn, batch: Sequence[_Pending]) -> None:
        """Write one batch and settle its callers. Raises only when ``conn`` is unusable
        (after failing the batch) or the writer is cancelled."""
        try:
            rows = await self._call(conn, batch)
        except asyncpg.PostgresError as exc:
            if len(batch) > 1:
                # something in the batch was refused (or a deadlock with a process of an
                # older version): each alone, so that only the culprit fails
                log.warning("an alert intake batch of %d failed (%s: %s); writing them one at a time",
                            len(batch), type(exc).__name__, exc)
                for one in batch:
                    await self._write(conn, [one])
            else:
                self._fail(batch, _as_error(exc))
            return
        except _DB_ERRORS as exc:
            self._fail(batch, StoreError(f"storing alert notifications failed: {exc}"))
            raise
        except Exception as exc:
            log.exception("the alert intake failed on a batch of %d", len(batch))
            self._fail(batch, StoreError(f"storing alert notifications failed: {exc}"))
            return
        except BaseException:
            self._fail(batch, StoreError("the alert intake was stopped"))
            raise
        self.batches += 1
        self.largest_batch = max(self.largest_batch, len(batch))
        for r in rows:
            p = batch[r["o_item"]]
            if not p.done.done():
                p.done.set_result(r)

    async def _call(self, conn: Conn, batch: Sequence[_Pending]) -> list[asyncpg.Record]:
        k = self.params
        rows: list[asyncpg.Record] = await conn.fetch(
            _CALL, [dict(p.item) for p in batch], [p.payload_json for p in batch], k.reopen_s,
            k.storm_threshold, k.storm_window_s, k.storm_gather_s, k.notify_channel, k.storm_lock_space,
            timeout=self.timeout_s)
        if len(rows) != len(batch):
            raise StoreError(f"the intake returned {len(rows)} rows for {len(batch)} notifications")
        return rows

    @staticmethod
    def _fail(batch: Sequence[_Pending], exc: Exception) -> None:
        for p in batch:
            if not p.done.done():
                p.done.set_exception(exc)


def _as_error(exc: asyncpg.PostgresError) -> Exception:
    state = str(getattr(exc, "sqlstate", "") or "")
    # a data exception (22) or a value over a limit of the store (54): this payload cannot
    # be stored as given, however often it is sent again
    if state.startswith(("22", "54")):
        return BadInput(f"the store cannot keep this payload: {exc}")
    return StoreError(f"storing the alert notification failed: {exc}")


# ------------------------------------------------------------------ before the intake: parsing in turns


class Turns:
    """Runs the CPU-bound step of concurrent requests (parsing a body) one at a time,
    with a pass of the event loop between two of them, for bodies of ``min_chars`` or
    more.

    A storm's notifications arrive together: without turns, the loop parses every body
    that is ready before it looks at anything else, so the replies of the intake's
    batches (and the answers to senders whose notifications are stored) wait behind all
    the parsing. With turns, the intake writes batch after batch while the next bodies
    are parsed, and each sender is answered as soon as its notification is stored.
    Turns are taken in arrival order. A small body (one alert: well under a millisecond
    to parse) is parsed at once: a turn would cost it more than it gives the others, and
    it would make the intake's batches smaller."""

    def __init__(self, min_chars: int = 16 * 1024) -> None:
        self.min_chars = min_chars
        self._lock = asyncio.Lock()

    async def run(self, f: Callable[[str], _T], arg: str) -> _T:
        if len(arg) < self.min_chars:
            return f(arg)
        async with self._lock:
            try:
                return f(arg)
            finally:
                # still holding the turn: the loop polls for I/O and runs what is ready
                # before the next request's turn (handed over when this one resumes)
                await asyncio.sleep(0)
