"""Follow-up tickets in the bot's store (``tracker_tickets``, migration 013), and the
per-(incident, layer) advisory lock that makes "look up, else create" one at a time
across processes. One named query per file in ``bot/store/sql/tracker_*.sql``."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from bot.errors import StoreError
from bot.sqlfiles import Queries
from bot.store.db import NamedQueries
from bot.tracker.model import FollowUpState, Ticket

Q = Queries("bot.store", "sql")
_DB_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError)
LOCK_SPACE = 0x7472616B  # "trak": advisory locks of follow-up tickets


@dataclass(frozen=True, slots=True)
class StoredTicket:
    incident_id: str
    owning_layer: str
    tracker: str
    target: str
    key: str | None
    url: str | None
    state: str  # creating | open | recovered
    last_state: FollowUpState | None
    last_comment_digest: str | None
    pending_comment_digest: str | None
    attempts: int
    attempted_at: datetime
    created_at: datetime | None
    db_now: datetime

    @property
    def ticket(self) -> Ticket | None:
        if self.key is None or self.url is None:
            return None
        number = int(self.key[1:]) if self.tracker == "github" and self.key.startswith("#") else None
        return Ticket(self.tracker, self.target, self.key, self.url, number)

    @property
    def attempt_age_s(self) -> float:
        return (self.db_now - self.attempted_at).total_seconds()


def _row(r: asyncpg.Record) -> StoredTicket:
    d = dict(r)
    d["last_state"] = FollowUpState.from_json(d["last_state"])
    d.pop("updated_at", None)
    return StoredTicket(**d)


class TicketStore(NamedQueries):
    """``tracker_tickets`` over the store's pool."""

    async def get(self, incident_id: str, layer: str) -> StoredTicket | None:
        r = await self._q("tracker_ticket_get", "fetchrow", incident_id, layer)
        return _row(r) if r is not None else None

    async def of_incident(self, incident_id: str) -> list[StoredTicket]:
        return [_row(r) for r in await self._q("tracker_tickets_of", "fetch", incident_id)]

    async def attempt(self, incident_id: str, layer: str, tracker: str, target: str) -> None:
        """Record (and commit) that a create is about to be tried."""
        await self._q("tracker_ticket_attempt", "fetchval", incident_id, layer, tracker, target)

    async def abandon(self, incident_id: str, layer: str) -> None:
        await self._q("tracker_ticket_abandon", "execute", incident_id, layer)

    async def created(self, incident_id: str, layer: str, ticket: Ticket, state: FollowUpState) -> bool:
        """Store the ticket; False if one was stored already (the row is left as it was)."""
        key = await self._q("tracker_ticket_created", "fetchval", incident_id, layer, ticket.tracker,
                            ticket.target, ticket.key, ticket.url, state.to_json(), state.digest)
        return key is not None

    async def comment_begin(self, incident_id: str, layer: str, digest: str) -> None:
        await self._q("tracker_comment_begin", "execute", incident_id, layer, digest)

    async def comment_done(self, incident_id: str, layer: str, digest: str,
                           state: FollowUpState | None, new_state: str | None = None) -> None:
        await self._q("tracker_comment_done", "execute", incident_id, layer, digest,
                      state.to_json() if state is not None else None, new_state)

    @contextlib.asynccontextmanager
    async def lock(self, incident_id: str, layer: str) -> AsyncIterator[None]:
        """Hold the (incident, layer) session advisory lock on a pooled connection of its
        own. The pool does not reset connections (``bot.store.db``), so a connection whose
        lock may still be held (taking or releasing it was interrupted) is terminated
        instead of going back to the pool."""
        key = f"{incident_id}:{layer}"
        async with self._acquire() as conn:
            try:
                await conn.fetchval(Q["tracker_lock"], LOCK_SPACE, key)
            except BaseException as exc:
                conn.terminate()
                if isinstance(exc, _DB_ERRORS):
                    raise StoreError(f"store: taking the ticket lock failed: {exc}") from exc
                raise
            try:
                yield
            finally:
                try:
                    await conn.fetchval(Q["tracker_unlock"], LOCK_SPACE, key)
                except _DB_ERRORS:
                    conn.terminate()  # the server drops the session's locks with it
                except BaseException:
                    conn.terminate()
                    raise

    @contextlib.asynccontextmanager
    async def _acquire(self) -> AsyncIterator[Any]:
        try:
            cm = self._pool.acquire()
            conn = await cm.__aenter__()
        except _DB_ERRORS as exc:
            raise StoreError(f"store: no connection for the ticket lock: {exc}") from exc
        try:
            yield conn
        finally:
            await cm.__aexit__(None, None, None)
