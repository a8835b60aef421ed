"""Alert groups in the store: intake of a notification (one transaction), the queue of
notifications each group has still to show in Slack, storms, and a per-group lock.

Intake decides what a notification means for its group:

- ``open``: a new group, or one that fires again after the reopen window (a new
  generation: a new thread, a new incident);
- ``refire``: it fires again within the window (same thread);
- ``resolve``: it was firing and is resolved now;
- ``repeat``: nothing changed but the counts (Alertmanager's repeat_interval, retries).

Each notification is stored with its action, and a job is queued for its group (or
for the group's storm, when many groups open in one channel at once). A job processes a
group's unhandled notifications in order under the group's advisory lock, so whichever
process runs it, each one is shown once and in order.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import asyncpg

from bot.alerts.model import AlertNotification
from bot.errors import StoreError
from bot.sqlfiles import Queries
from bot.store.db import Conn, Pool
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
                 storm_gather_s: float = 2.0) -> None:
        self._pool = pool
        self.storm_gather_s = storm_gather_s
        self.reopen = timedelta(seconds=reopen_s)
        self.storm_threshold = storm_threshold
        self.storm_window_s = storm_window_s

    async def intake(self, n: AlertNotification, *, channel: str | None, route: str, subject: Mapping[str, Any],
                     payload: Mapping[str, Any], anchor_ts: str | None = None,
                     event_id: str | None = None, retry_num: int = 0) -> Intake | None:
        """Store the notification and queue its job. With ``event_id`` (an alert post seen
        through Slack's Events API) the event is recorded in the same transaction, and a
        delivery of an event already taken in returns None."""
        labels = n.labels_for_triage()
        firing = sum(1 for a in n.alerts if a.status == "firing")
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                if event_id and await conn.fetchval(Q["event_seen"], event_id, retry_num) is not True:
                    return None
                # one upsert decides what the notification means (its row lock orders
                # concurrent notifications of the group)
                row = await conn.fetchrow(
                    Q["alert_group_upsert"], n.source, n.group_key, n.status, labels.get("alertname"), n.severity(),
                    labels, n.common_annotations, dict(subject), channel, anchor_ts, route, firing,
                    self.reopen.total_seconds())
                assert row is not None
                data = dict(row)
                action: Action = data.pop("last_action")
                group = AlertGroup(**data)
                storm_id = group.storm_id
                if action == "open" and channel and anchor_ts is None:
                    storm_id = await self._maybe_storm(conn, channel, group.group_id) or storm_id
                delay = 0.0
                if storm_id is not None and action == "open":
                    # a storm gathers for a moment, so its groups are triaged in order of severity
                    kind, key, delay = STORM_JOB, f"{STORM_JOB}:{storm_id}", self.storm_gather_s
                else:
                    kind, key = ALERT_JOB, f"{ALERT_JOB}:{group.group_id}"
                got = await conn.fetchrow(Q["alert_record_and_enqueue"], group.group_id, group.generation, action,
                                          n.status, len(n.alerts), dict(payload), kind, key,
                                          {"group_id": group.group_id, "storm_id": storm_id}, delay)
                assert got is not None
                nid, job_id = int(got["notification_id"]), got["job_id"]
                if job_id is not None:
                    await conn.execute(f"NOTIFY {NOTIFY_CHANNEL}")
        except _DB_ERRORS as exc:
            raise StoreError(f"storing the alert notification failed: {exc}") from exc
        return Intake(group, action, nid, int(job_id) if job_id is not None else None, storm_id)

    async def _maybe_storm(self, conn: Conn, channel: str, group_id: int) -> int | None:
        # one storm per channel at a time: concurrent intakes for a channel take turns here
        await conn.execute("SELECT pg_advisory_xact_lock($1, hashtext($2))", _LOCK_SPACE + 1, channel)
        recent = await conn.fetchval(Q["alert_recent_opens"], channel, self.storm_window_s)
        if int(recent) < self.storm_threshold:
            return None
        storm_id = await conn.fetchval(Q["alert_storm_active"], channel, self.storm_window_s)
        if storm_id is None:
            storm_id = await conn.fetchval(Q["alert_storm_create"], channel)
            log.warning("alert storm in %s: %d groups opened within %.0f s; one summary, triage by severity",
                        channel, recent, self.storm_window_s)
        await conn.fetch(Q["alert_storm_join"], storm_id, group_id)
        return int(storm_id)

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
        async with self._pool.acquire() as conn:
            got = bool(await conn.fetchval("SELECT pg_try_advisory_lock($1, $2)", _LOCK_SPACE + 2, storm_id))
            try:
                yield got
            finally:
                if got:
                    await conn.execute("SELECT pg_advisory_unlock($1, $2)", _LOCK_SPACE + 2, storm_id)

    @contextlib.asynccontextmanager
    async def _lock(self, space: int, key: int) -> AsyncIterator[None]:
        async with self._pool.acquire() as conn:
            await conn.execute("SELECT pg_advisory_lock($1, $2)", space, key)
            try:
                yield
            finally:
                await conn.execute("SELECT pg_advisory_unlock($1, $2)", space, key)

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

    async def next_unhandled(self, group_id: int) -> Notification | None:
        row = await self._q("alert_next_unhandled", "fetchrow", group_id)
        return Notification(**dict(row)) if row is not None else None

    async def later_unhandled(self, group_id: int, notification_id: int) -> bool:
        return bool(await self._q("alert_later_unhandled", "fetchval", group_id, notification_id))

    async def mark_handled(self, notification_id: int) -> None:
        await self._q("alert_mark_handled", "execute", notification_id)

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
