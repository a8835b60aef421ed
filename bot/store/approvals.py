"""Approval prompts, votes, the approval audit, and freezes.

``vote`` and ``retract`` run in one transaction with the prompt's row locked, so two
processes seeing the same reaction, or two approvers deciding at once, decide once; the
audit's ``dedup_key`` (the Slack event id, or the button's action) makes a repeated
event count once.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import asyncpg

from bot.errors import StoreError
from bot.sqlfiles import Queries
from bot.store.corrections import seal
from bot.store.db import Conn, NamedQueries

log = logging.getLogger(__name__)
Q = Queries("bot.store", "sql")
_DB_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError)

Kind = Literal["freeze", "unfreeze", "corrections"]
Vote = Literal["approve", "decline"]
Via = Literal["reaction", "button"]


@dataclass(frozen=True, slots=True)
class Prompt:
    prompt_id: int
    incident_id: str
    kind: Kind
    channel: str
    thread_ts: str | None
    message_ts: str | None
    scope: dict[str, Any]
    reason: str
    quorum: int
    status: Literal["open", "approved", "declined", "expired", "superseded"]
    freeze_id: int | None
    created_at: datetime
    expires_at: datetime
    decided_at: datetime | None
    decided_by: list[str]


@dataclass(frozen=True, slots=True)
class Freeze:
    freeze_id: int
    incident_id: str
    status: Literal["active", "lifted"]
    scope: dict[str, Any]
    reason: str
    approved_by: list[str]
    prompt_id: int | None
    frozen_at: datetime
    lifted_at: datetime | None
    lifted_by: list[str] | None
    lift_prompt_id: int | None


@dataclass(frozen=True, slots=True)
class VoteResult:
    """What a vote or retraction did. ``outcome``: counted, retracted, duplicate,
    refused (not an approver: the first time on this prompt), refused_again (not an
    approver, answered before), closed (already decided or expired), expired (this
    reaction found it expired), not_counted (nothing to retract)."""

    outcome: Literal["counted", "retracted", "duplicate", "refused", "refused_again", "closed", "expired",
                     "not_counted"]
    prompt: Prompt
    votes: dict[str, Vote]
    decided: Literal["approved", "declined"] | None = None
    freeze: Freeze | None = None
    batch_id: int | None = None  # an approved corrections prompt: its sealed batch


def decision(votes: Mapping[str, Vote], quorum: int) -> Literal["approved", "declined"] | None:
    """Approved once ``quorum`` distinct approvers approve; declined once ``quorum`` decline."""
    approvals = sum(1 for v in votes.values() if v == "approve")
    declines = sum(1 for v in votes.values() if v == "decline")
    if approvals >= quorum:
        return "approved"
    if declines >= quorum:
        return "declined"
    return None


def scope_rows(scope: Mapping[str, Any]) -> tuple[list[str], list[str | None], list[str | None]]:
    """The freeze_scopes rows of a scope document (orgs, projects, app instances)."""
    orgs: list[str] = []
    projects: list[str | None] = []
    instances: list[str | None] = []
    for org in scope.get("orgs", []):
        orgs.append(org)
        projects.append(None)
        instances.append(None)
    for org, project in scope.get("projects", []):
        orgs.append(org)
        projects.append(project)
        instances.append(None)
    for org, project, aid in scope.get("app_instances", []):
        orgs.append(org)
        projects.append(project)
        instances.append(aid)
    return orgs, projects, instances


class ApprovalStore(NamedQueries):
    async def create_prompt(self, *, incident_id: str, kind: Kind, channel: str, thread_ts: str | None,
                            scope: Mapping[str, Any], reason: str, quorum: int, expires_in_s: float,
                            freeze_id: int | None = None) -> tuple[Prompt, bool]:
        """``(prompt, created)``: a new prompt, or the open one of this kind for the incident."""
        row = await self._q("prompt_create", "fetchrow", incident_id, kind, channel, thread_ts, dict(scope), reason,
                            quorum, float(expires_in_s), freeze_id)
        if row is not None:
            p = Prompt(**dict(row))
            await self.audit(p, "prompt", details={"scope": dict(scope), "reason": reason, "quorum": quorum},
                             dedup_key=f"prompt:{p.prompt_id}")
            return p, True
        existing = await self.open_prompt(incident_id, kind)
        if existing is None:
            raise StoreError(f"could not create or find an open {kind} prompt for {incident_id}")
        return existing, False

    async def open_prompt(self, incident_id: str, kind: Kind) -> Prompt | None:
        row = await self._q("prompt_open_for", "fetchrow", incident_id, kind)
        return Prompt(**dict(row)) if row is not None else None

    async def set_message(self, prompt_id: int, ts: str) -> None:
        await self._q("prompt_set_message", "execute", prompt_id, ts)

    async def by_message(self, channel: str, ts: str) -> Prompt | None:
        row = await self._q("prompt_by_message", "fetchrow", channel, ts)
        return Prompt(**dict(row)) if row is not None else None

    async def by_message_or_pending(self, channel: str, ts: str) -> Prompt | None:
        """The prompt of this message, else an open prompt of the channel whose message is
        being posted (its ts not stored yet); ``message_ts`` tells which."""
        row = await self._q("prompt_by_message_or_pending", "fetchrow", channel, ts)
        return Prompt(**dict(row)) if row is not None else None

    async def get(self, prompt_id: int) -> Prompt | None:
        row = await self._q("prompt_get", "fetchrow", prompt_id)
        return Prompt(**dict(row)) if row is not None else None

    async def votes(self, prompt_id: int) -> dict[str, Vote]:
        return {r["user_id"]: r["vote"] for r in await self._q("votes_of", "fetch", prompt_id)}

    async def events(self, prompt_id: int) -> list[dict[str, Any]]:
        return [dict(r) for r in await self._q("approval_events_of", "fetch", prompt_id)]

    async def audit(self, p: Prompt, type_: str, *, user_id: str | None = None, vote: str | None = None,
                    via: str | None = None, details: Mapping[str, Any] | None = None, dedup_key: str | None = None,
                    conn: Conn | None = None) -> bool:
        """Append an audit record; False when its dedup_key was seen before."""
        args = (p.prompt_id, p.incident_id, type_, user_id, vote, via, p.channel, p.message_ts,
                dict(details or {}), dedup_key)
        try:
            got = await (conn or self._pool).fetchval(Q["approval_event_add"], *args)
        except _DB_ERRORS as exc:
            raise StoreError(f"recording an approval event failed: {exc}") from exc
        return got is not None

    async def vote(self, prompt_id: int, *, user_id: str, vote: Vote, via: Via, is_approver: bool,
                   dedup_key: str) -> VoteResult:
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                row = await conn.fetchrow(Q["prompt_for_update"], prompt_id)
                if row is None:
                    raise StoreError(f"no approval prompt {prompt_id}")
                data = dict(row)
                now = data.pop("db_now")
                p = Prompt(**data)
                votes = {r["user_id"]: r["vote"] for r in await conn.fetch(Q["votes_of"], prompt_id)}
                if p.status != "open":
                    fresh = await self.audit(p, "ignored", user_id=user_id, vote=vote, via=via, conn=conn,
                                             details={"why": f"prompt already {p.status}"}, dedup_key=dedup_key)
                    return VoteResult("closed" if fresh else "duplicate", p, votes)
                if now >= p.expires_at:
                    row = await conn.fetchrow(Q["prompt_decide"], prompt_id, "expired", [], None)
                    assert row is not None  # the row is locked and open
                    p = Prompt(**dict(row))
                    await self.audit(p, "expiry", conn=conn, details={"expired_at": p.expires_at.isoformat()},
                                     dedup_key=f"expiry:{prompt_id}")
                    await self.audit(p, "ignored", user_id=user_id, vote=vote, via=via, conn=conn,
                                     details={"why": "prompt expired"}, dedup_key=dedup_key)
                    return VoteResult("expired", p, votes)
                if not is_approver:
                    answered = await conn.fetchval(Q["refusal_seen"], prompt_id, user_id)
                    fresh = await self.audit(p, "refusal", user_id=user_id, vote=vote, via=via, conn=conn,
                                             details={"why": "not an approver"}, dedup_key=dedup_key)
                    if not fresh:
                        return VoteResult("duplicate", p, votes)
                    return VoteResult("refused_again" if answered else "refused", p, votes)
                if not await self.audit(p, "vote", user_id=user_id, vote=vote, via=via, conn=conn,
                                        dedup_key=dedup_key):
                    return VoteResult("duplicate", p, votes)
                await conn.execute(Q["vote_upsert"], prompt_id, user_id, vote, via)
                votes[user_id] = vote
                decided = decision(votes, p.quorum)
                if decided is None:
                    return VoteResult("counted", p, votes)
                deciders = sorted(u for u, v in votes.items() if v == ("approve" if decided == "approved"
                                                                          else "decline"))
                freeze = None
                freeze_id = None
                batch_id = None
                if decided == "approved" and p.kind == "corrections":
                    batch_id = await seal(conn, incident_id=p.incident_id, prompt_id=p.prompt_id, scope=p.scope,
                                          approved_by=deciders, votes=votes)
                elif decided == "approved":
                    freeze = await self._apply(conn, p, deciders)
                    freeze_id = freeze.freeze_id if freeze else None
                row = await conn.fetchrow(Q["prompt_decide"], prompt_id, decided, deciders, freeze_id)
                assert row is not None  # the row is locked and open
                p = Prompt(**dict(row))
                await self.audit(p, "decision", conn=conn, dedup_key=f"decision:{prompt_id}",
                                 details={"decision": decided, "by": deciders, "freeze_id": freeze_id,
                                          "batch_id": batch_id})
                return VoteResult("counted", p, votes, decided, freeze, batch_id)
        except _DB_ERRORS as exc:
            raise StoreError(f"recording a vote failed: {exc}") from exc

    async def _apply(self, conn: Conn, p: Prompt, deciders: Sequence[str]) -> Freeze | None:
        if p.kind == "freeze":
            freeze_id = await conn.fetchval(Q["freeze_create"], p.incident_id, p.scope, p.reason, list(deciders),
                                            p.prompt_id)
            orgs, projects, instances = scope_rows(p.scope)
            await conn.execute(Q["freeze_scope_add"], freeze_id, orgs, projects, instances)
            row = await conn.fetchrow(Q["freeze_get"], freeze_id)
        else:
            if p.freeze_id is None:
                return None
            row = await conn.fetchrow(Q["freeze_lift"], p.freeze_id, list(deciders), p.prompt_id)
        return Freeze(**dict(row)) if row is not None else None

    async def retract(self, prompt_id: int, *, user_id: str, vote: Vote, dedup_key: str) -> VoteResult:
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                row = await conn.fetchrow(Q["prompt_for_update"], prompt_id)
                if row is None:
                    raise StoreError(f"no approval prompt {prompt_id}")
                data = dict(row)
                data.pop("db_now")
                p = Prompt(**data)
                votes = {r["user_id"]: r["vote"] for r in await conn.fetch(Q["votes_of"], prompt_id)}
                if p.status != "open":
                    await self.audit(p, "ignored", user_id=user_id, vote=vote, via="reaction", conn=conn,
                                     details={"why": f"retraction after the prompt was {p.status}"},
                                     dedup_key=dedup_key)
                    return VoteResult("closed", p, votes)
                gone = await conn.fetchval(Q["vote_retract"], prompt_id, user_id, vote)
                if gone is None:
                    return VoteResult("not_counted", p, votes)
                if not await self.audit(p, "retract", user_id=user_id, vote=vote, via="reaction", conn=conn,
                                        dedup_key=dedup_key):
                    return VoteResult("duplicate", p, votes)
                votes.pop(user_id, None)
                return VoteResult("retracted", p, votes)
        except _DB_ERRORS as exc:
            raise StoreError(f"recording a retraction failed: {exc}") from exc

    async def supersede(self, p: Prompt, *, by_run: int | None) -> Prompt | None:
        """Close an open prompt that a newer proposal replaces (None: decided meanwhile)."""
        row = await self._q("prompt_supersede", "fetchrow", p.prompt_id)
        if row is None:
            return None
        closed = Prompt(**dict(row))
        await self.audit(closed, "supersede", details={"by_run": by_run}, dedup_key=f"supersede:{p.prompt_id}")
        return closed

    async def expire_due(self) -> list[Prompt]:
        rows = await self._q("prompts_expire_due", "fetch")
        out = [Prompt(**dict(r)) for r in rows]
        for p in out:
            await self.audit(p, "expiry", details={"expired_at": p.expires_at.isoformat()},
                             dedup_key=f"expiry:{p.prompt_id}")
        return out

    async def active_freezes(self, org_id: str | None = None, project_id: str | None = None) -> list[Freeze]:
        return [Freeze(**dict(r)) for r in await self._q("freezes_active", "fetch", org_id, project_id)]

    async def freezes_of(self, incident_id: str) -> list[Freeze]:
        return [Freeze(**dict(r)) for r in await self._q("freezes_of_incident", "fetch", incident_id)]

    async def active_freezes_touching(self, incident_id: str, app_instance_ids: Sequence[str]) -> list[Freeze]:
        rows = await self._q("freezes_active_for_instances", "fetch", incident_id, list(app_instance_ids))
        return [Freeze(**dict(r)) for r in rows]

    async def freeze(self, freeze_id: int) -> Freeze | None:
        row = await self._q("freeze_get", "fetchrow", freeze_id)
        return Freeze(**dict(row)) if row is not None else None

    async def latest_result(self, incident_id: str) -> dict[str, Any] | None:
        row = await self._q("incident_latest_run", "fetchrow", incident_id)
        return dict(row["result"]) if row is not None and row["result"] is not None else None
