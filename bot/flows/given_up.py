"""A job given up is said so in its thread.

A job whose process died on each of its attempts (``JobQueue.give_up``: killed, out of
memory, cut off from the store) is failed for good instead of crashing every replica in
turn; this posts one short reply in the thread the job was writing in (its incident's,
else the one of its latest post), saying how many attempts it had and why it stopped.
The reply has a stable key, so it is posted once even if reported twice. A job that
posted nothing has no thread to tell: it is logged only.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from slack_sdk.web.async_client import AsyncWebClient

from bot.render.slack import Message, esc
from bot.slack.poster import SlackThread
from bot.store.jobs import Job, JobQueue, job_namespace

log = logging.getLogger(__name__)
POST_KEY = "given-up"
MAX_REASON = 1500


def given_up_message(job: Job) -> Message:
    reason = job.last_error or f"given up after {job.attempts} attempts"
    if len(reason) > MAX_REASON:
        reason = reason[:MAX_REASON] + "…"
    text = esc(f":x: recon gave up on this {job.kind} job (#{job.job_id}) after {job.attempts} "
                f"attempt{'s' if job.attempts != 1 else ''}: {reason}")
    block = (f":x: *recon gave up on this {esc(job.kind)} job* (#{job.job_id}) after {job.attempts} "
             f"attempt{'s' if job.attempts != 1 else ''}.\n{esc(reason)}")
    return Message(text=text, blocks=[{"type": "section", "text": {"type": "mrkdwn", "text": block}}])


async def report_given_up(job: Job, queue: JobQueue, slack: AsyncWebClient) -> str | None:
    """Post the reply; its ts, or None when the job has no thread."""
    where = await queue.thread_of(job.job_id)
    if where is None:
        log.warning("job %s was given up before it posted anything: no thread to tell", job.job_id)
        return None
    channel, thread_ts = where
    sink = SlackThread(slack, queue, job_namespace(job.job_id), channel, thread_ts=thread_ts, job_id=job.job_id)
    return await sink.post_reply(given_up_message(job), key=POST_KEY)


def given_up_reporter(queue: JobQueue, slack: AsyncWebClient) -> Callable[[Job], Awaitable[None]]:
    """``Worker(on_give_up=...)``: report each given-up job in its thread."""

    async def report(job: Job) -> None:
        await report_given_up(job, queue, slack)

    return report
