"""Alert groups in the store: intake of notifications (batched: ``bot.store.intake``),
the queue of notifications each group has still to show in Slack, storms, and a
per-group lock.

Intake decides what a notification means for its group:

- ``open``: a new group, or one that fires again after the reopen window (a new
  generation: a new thread, a new incident);
- ``refire``: it fires again within the window (same thread);
- ``resolve``: it was firing and is resolved now;
- ``repeat``: nothing changed but the counts (Alertmanager's repeat_interval, retries).

Each notification is stored with its action, and a job is queued for its group (or
for the group's storm, when many groups open in one channel at once), in the
transaction of its batch (``recon_alert_intake``, migration 008). A job processes a
group's unhandled notifications in order under the group's advisory lock, so whichever
process runs it, each one is shown once and in order.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import asyncpg

from bot.alerts.model import NotificationDigest
from bot.errors import StoreError
from bot.sqlfiles import Queries
from bot.store.db import Pool
from bot.store.intake import IntakeParams, IntakeWriter, intake_item
from bot.store.jobs import NOTIFY_CHANNEL

log = logging.getLogger(__name__)
Q = Queries("bot.store", "sql")
_DB_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError)
ALERT_JOB = "alert"
STORM_JOB = "alert_storm"
_LOCK_SPACE = 0x7265636F  # "reco": advisory locks of alert groups

Action = Literal["open", "repeat", "resolve", "refire"]


@dataclass(frozen=True, slots=True)
class AlertGroup:
    group_id: int
    source: str
    group_key: str
    status: str
    alertname: str | None
    severity: str
    labels: dict[str, str]
    annotations: dict[str, str]
    subject: dict[str, Any]
    channel: str | None
    route: str | None
    generation: int
    storm_id: int | None
    anchor_ts: str | None
    thread_ts: str | None
    incident_id: str | None
    verdict: dict[str, Any] | None
    notifications: int
    alerts_firing: int
    first_seen: datetime
    last_seen: datetime
    fired_at: datetime
    resolved_at: datetime | None
    db_now: datetime

    @property
    def namespace(self) -> str:
        """The Slack-post namespace of this generation's thread."""
        return f"alert:{self.group_id}:{self.generation}"

    @property
    def incident_key(self) -> str:
        return f"{self.source}:{self.group_key}#{self.generation}"


_GROUP_FIELDS = tuple(f.name for f in dataclasses.fields(AlertGroup))


@dataclass(frozen=True, slots=True)
class Notification:
    notification_id: int
    group_id: int
    generation: int
    action: Action
    status: str
    alerts: int
    received_at: datetime


@dataclass(frozen=True, slots=True)
class Intake:
    group: AlertGroup
    action: Action
    notification_id: int
    job_id: int | None  # None: a job already queued for the group (or storm) will show it
    storm_id: int | None


@dataclass(frozen=True, slots=True)
class Storm:
    storm_id: int
    channel: str
    started_at: datetime
    last_joined: datetime
    summary_ts: str | None


class AlertStore:
    def __init__(self, pool: Pool, *, reopen_s: float, storm_threshold: int, storm_window_s: float,
                 storm_gather_s: float = 2.0, intake_pool: Pool | None = None) -> None:
        self._pool = pool
        self.writer = IntakeWriter(intake_pool or pool, IntakeParams(
            reopen_s=reopen_s, storm_threshold=storm_threshold, storm_window_s=storm_window_s,
            storm_gather_s=storm_gather_s, notify_channel=NOTIFY_CHANNEL, storm_lock_space=_LOCK_SPACE + 1))

    async def intake(self, n: NotificationDigest, *, channel: str | None, route: str, subject: Mapping[str, Any],
                     payload_json: str, anchor_ts: str | None = None,
                     event_id: str | None = None, retry_num: int = 0) -> Intake | None:
        """Store the notification (``n``: its digest; ``payload_json``: the payload as JSON
        text, kept as received) and queue its job, with whatever else arrives meanwhile
        (group commit: ``bot.store.intake``). With ``event_id`` (an alert post seen through
        Slack's Events API) the event is recorded in the same transaction, and a delivery of
        an event already taken in returns None.

        Raises ``StoreError`` when it could not be stored, ``BadInput`` when the store
        refuses this payload."""
        item = intake_item(n, channel=channel, route=route, subject=subject, anchor_ts=anchor_ts,
                           event_id=event_id, retry_num=retry_num)
        r = await self.writer.submit(item, payload_json)
        if r["o_action"] is None:
            return None  # this Slack event was taken in before
        if r["o_storm_started"]:
            log.warning("alert storm in %s: %d groups opened within %.0f s; one summary, triage by severity",
                        channel, r["o_recent_opens"], self.writer.params.storm_window_s)
        group = AlertGroup(**{f: r[f"o_{f}"] for f in _GROUP_FIELDS})
        job_id = r["o_job_id"]
        return Intake(group, r["o_action"], int(r["o_notification_id"]),
                      int(job_id) if job_id is not None else None, r["o_storm_id"])

    async def aclose(self) -> None:
        """Let the intake finish the batches it is writing (before the pools close)."""
        await self.writer.aclose()

    # ------------------------------------------------------------ processing

    @contextlib.asynccontextmanager
    async def group_lock(self, group_id: int) -> AsyncIterator[None]:
        """Hold the group's advisory lock (session-level, on a connection of its own)."""
        async with self._lock(_LOCK_SPACE, group_id):
            yield

    @contextlib.asynccontextmanager
    async def storm_lock(self, storm_id: int) -> AsyncIterator[bool]:
        """Try to become the storm's one job (its groups go out in severity order). Yields
        False at once when another job holds it: that one also triages later groups."""
        async with self._session_lock("SELECT pg_try_advisory_lock($1, $2)", _LOCK_SPACE + 2, storm_id) as got:
            yield got

    @contextlib.asynccontextmanager
    async def _lock(self, space: int, key: int) -> AsyncIterator[None]:
        async with self._session_lock("SELECT true FROM pg_advisory_lock($1, $2)", space, key, wait=True):
            yield

    @contextlib.asynccontextmanager
    async def _session_lock(self, take: str, space: int, key: int, *, wait: bool = False) -> AsyncIterator[bool]:
        """A session advisory lock on a pooled connection of its own, yielding whether it
        was taken. The pool does not reset connections (``bot.store.db``), so a connection
        whose lock may still be held (taking or releasing it was interrupted) is
        terminated instead of going back to the pool."""
        async with self._pool.acquire() as conn:
            try:
                if wait:  # waiting for another job's group is no stuck statement
                    await conn.execute("SET statement_timeout = 0")
                got = bool(await conn.fetchval(take, space, key))
                if wait:
                    await conn.execute("RESET statement_timeout")
            except BaseException:
                conn.terminate()
                raise
            try:
                yield got
            finally:
                if got:
                    try:
                        await conn.execute("SELECT pg_advisory_unlock($1, $2)", space, key)
                    except BaseException:
                        conn.terminate()
                        raise

    async def _q(self, name: str, method: str, *args: Any) -> Any:
        try:
            return await getattr(self._pool, method)(Q[name], *args)
        except _DB_ERRORS as exc:
            raise StoreError(f"store query {name} failed: {exc}") from exc

    async def group(self, group_id: int) -> AlertGroup:
        row = await self._q("alert_group_get", "fetchrow", group_id)
        if row is None:
            raise StoreError(f"no alert group {group_id}")
        return AlertGroup(**dict(row))

    async def unhandled(self, group_id: int, limit: int) -> list[Notification]:
        """The group's notifications still to be shown, oldest first."""
        return [Notification(**dict(r)) for r in await self._q("alert_unhandled", "fetch", group_id, limit)]

    async def later_unhandled(self, group_id: int, notification_id: int) -> bool:
        return bool(await self._q("alert_later_unhandled", "fetchval", group_id, notification_id))

    async def mark_handled(self, notification_id: int) -> None:
        await self._q("alert_mark_handled", "execute", notification_id)

    async def mark_handled_many(self, notification_ids: list[int]) -> None:
        await self._q("alert_mark_handled_many", "execute", notification_ids)

    async def set_thread(self, group_id: int, anchor_ts: str, thread_ts: str, incident_id: str | None) -> None:
        await self._q("alert_group_set_thread", "execute", group_id, anchor_ts, thread_ts, incident_id)

    async def set_verdict(self, group_id: int, verdict: Mapping[str, Any]) -> None:
        await self._q("alert_group_set_verdict", "execute", group_id, dict(verdict))

    async def storm(self, storm_id: int) -> Storm:
        row = await self._q("alert_storm_get", "fetchrow", storm_id)
        if row is None:
            raise StoreError(f"no alert storm {storm_id}")
        return Storm(**dict(row))

    async def set_storm_summary(self, storm_id: int, ts: str) -> None:
        await self._q("alert_storm_set_summary", "execute", storm_id, ts)

    async def storm_members(self, storm_id: int) -> list[AlertGroup]:
        return [AlertGroup(**dict(r)) for r in await self._q("alert_storm_members", "fetch", storm_id)]

    async def release_key(self, job_id: int) -> None:
        await self._q("job_rename_key", "execute", job_id)

    async def counts(self) -> dict[str, int]:
        row = await self._q("alert_groups_count", "fetchrow")
        return {"groups": int(row["groups"]), "threads": int(row["threads"])}
