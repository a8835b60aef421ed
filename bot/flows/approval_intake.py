"""Reactions and button presses on approval prompts, made durable.

A vote is acted on at once when it can be. Two cases cannot, and are kept as a job
(``approval_vote``, in the store's job queue) that the worker retries with backoff:

* the voter's approver status cannot be checked now (an approver user group cannot be
  read: a Slack API error, a timeout). The vote is neither counted nor refused on stale
  data; the thread says once per prompt and voter that it is not counted yet, and again
  if it still could not be counted after the last attempt (react again).
* the reaction lands on a message of a channel that has an open prompt still being
  posted (Slack answered with its ts, the store has not recorded it yet). Whether the
  message is that prompt is known once the ts is stored; the job looks again then, and
  drops the reaction if it was on an ordinary message (no prompt is being posted any
  more and none has that ts).

The job carries the Slack event's dedup key, so a vote replayed after it was counted
counts once (the audit's ``dedup_key``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from bot.errors import SourceUnavailable
from bot.flows.approvals import ApprovalFlow
from bot.render.approvals import short
from bot.render.mrkdwn import mention, mrkdwn
from bot.store.approvals import Prompt, Vote
from bot.store.jobs import Job

log = logging.getLogger(__name__)
VOTE_JOB = "approval_vote"
VOTE_JOB_ATTEMPTS = 8  # backoff 1, 2, 4 … 64 s: about two minutes in all


async def on_reaction(flow: ApprovalFlow, *, channel: str, ts: str, user: str, reaction: str, added: bool,
                      dedup_key: str) -> bool:
    """Handle a reaction (added or removed) if it is a prompt's business; False when the
    message is no prompt (nor possibly one being posted)."""
    vote = flow.vote_of(reaction)
    if vote is None:
        return await flow.approvals.by_message(channel, ts) is not None
    p = await flow.approvals.by_message_or_pending(channel, ts)
    if p is None:
        return False
    if p.message_ts != ts:  # a prompt of this channel is being posted: this may be its message
        await _hold(flow, {"channel": channel, "ts": ts, "user": user, "vote": vote, "added": added,
                           "dedup_key": dedup_key})
        return True
    if added:
        await cast(flow, p, user=user, vote=vote, via="reaction", dedup_key=dedup_key)
    else:
        res = await flow.on_retract(p, user=user, vote=vote, dedup_key=dedup_key)
        log.info("prompt %s: %s removed :%s: → %s", p.prompt_id, user, reaction, res.outcome)
    return True


async def cast(flow: ApprovalFlow, p: Prompt, *, user: str, vote: Vote, via: str, dedup_key: str) -> None:
    """A vote, counted now, or kept for a retry when the voter cannot be checked now."""
    try:
        res = await flow.on_vote(p, user=user, vote=vote, via=via, dedup_key=dedup_key)
    except SourceUnavailable as exc:
        log.warning("prompt %s: %s's %s cannot be checked now (%s); retrying it", p.prompt_id, user, vote, exc)
        await _hold(flow, {"prompt_id": p.prompt_id, "channel": p.channel, "ts": p.message_ts, "user": user,
                           "vote": vote, "added": True, "via": via, "dedup_key": dedup_key})
        await flow.sink(p).post(f"unchecked:{user}", short(mrkdwn(
            f":warning: {mention(user)}'s {vote} could not be counted yet: recon cannot read the approvers' user "
            "group from Slack right now. It is kept and retried; the prompt shows it once it counts.")),
            thread_ts=p.thread_ts)
        return
    log.info("prompt %s: %s's %s via %s → %s", p.prompt_id, user, vote, via, res.outcome)


async def _hold(flow: ApprovalFlow, payload: Mapping[str, Any]) -> None:
    await flow.queue.enqueue(VOTE_JOB, f"vote:{payload['dedup_key']}", payload, max_attempts=VOTE_JOB_ATTEMPTS)


async def run_vote_job(flow: ApprovalFlow, job: Job) -> Mapping[str, Any]:
    """Replay a held vote or retraction; raises (the worker retries) while it still cannot
    be decided, and gives up after the last attempt, saying so when it was a vote."""
    pl = job.payload
    last = job.attempts >= job.max_attempts
    vote: Vote = "decline" if pl.get("vote") == "decline" else "approve"
    if pl.get("prompt_id") is not None:
        p = await flow.approvals.get(int(pl["prompt_id"]))
    else:
        p = await flow.approvals.by_message_or_pending(str(pl["channel"]), str(pl["ts"]))
    if p is None:
        return {"dropped": "not a prompt's message"}
    if p.message_ts != pl.get("ts"):
        if last:
            return {"dropped": "the prompt's message was not stored in time"}
        raise SourceUnavailable("slack", f"prompt {p.prompt_id} is still being posted")
    if not pl.get("added", True):
        res = await flow.on_retract(p, user=str(pl["user"]), vote=vote, dedup_key=str(pl["dedup_key"]))
        return {"prompt_id": p.prompt_id, "outcome": res.outcome}
    try:
        res = await flow.on_vote(p, user=str(pl["user"]), vote=vote, via=str(pl.get("via") or "reaction"),
                                 dedup_key=str(pl["dedup_key"]))
    except SourceUnavailable:
        if not last:
            raise
        await flow.sink(p).post(f"uncounted:{pl['dedup_key']}", short(mrkdwn(
            f":warning: {mention(str(pl['user']))}'s {vote} could not be counted: the approvers' user group could "
            "not be read from Slack for several minutes. Please vote again.")), thread_ts=p.thread_ts)
        return {"prompt_id": p.prompt_id, "outcome": "not_counted"}
    return {"prompt_id": p.prompt_id, "outcome": res.outcome}


def vote_job_handler(flow: ApprovalFlow) -> Any:
    """The worker's handler for ``approval_vote`` jobs."""
    async def handle(job: Job) -> Mapping[str, Any]:
        return await run_vote_job(flow, job)
    return handle
