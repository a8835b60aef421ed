"""Bolt listeners for the reconcile surfaces: the shortcuts, their modal, a CSV shared in a thread.

- ``recon_reconcile`` (message shortcut) and ``recon_open`` (global shortcut): ack, then
  ``views.open`` at once with a view saying the message is being read (the trigger_id is
  good for 3 s, once), then the pre-filled form with ``views.update`` (its view_id and
  hash). The pre-fill (``bot.slack.files.prefill``) may call Slack; it never delays the
  open.
- The modal's ``view_submission``: checked (``bot.slack.modal.read_submission``); problems
  are shown in the modal (``response_action: errors``); a good one becomes one durable
  ``reconcile`` job and closes the modal.
- A ``message`` of subtype ``file_share`` in a thread whose incident the store knows, with
  a CSV file: one ``reconcile`` job per file (each event once, however often Slack
  delivers it). Other files, and files outside incident threads, are left alone.

Each surface asks ``Access`` (``RECON_ALLOWED_CHANNELS``, ``RECON_USERS``;
bot.slack.access) before any work: a shortcut by a person not allowed, or on a message in
a channel not allowed, opens a modal that says why instead of the form (the loading view
is opened first, as the check may read a user group); a submission is checked again (a
channel picked that is not allowed: ``response_action: errors`` on the picker); a CSV
shared by a person or in a channel not allowed is not read, and the person is told with
an ephemeral message in the thread (once per event). Nothing is queued for a refusal.

The work runs in the worker (``bot.flows.slack_reconcile``).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.errors import BadInput, StoreError
from bot.flows.slack_reconcile import KIND, export_payload, reconcile_payload
from bot.render.mrkdwn import mrkdwn
from bot.slack.access import CHANNEL_NOT_PICKABLE, Access
from bot.slack.commands import subject_key
from bot.slack.files import csv_files, file_name, prefill
from bot.slack.mentions import Mentions
from bot.slack.modal import (
    CALLBACK_ID,
    GLOBAL_SHORTCUT,
    MESSAGE_SHORTCUT,
    Kind,
    ModalInvalid,
    Prefill,
    ReconcileRequest,
    done_view,
    form_view,
    loading_view,
    origin_of,
    read_submission,
)
from bot.store.jobs import JobQueue
from bot.store.store import Store

log = logging.getLogger(__name__)
Listener = Callable[..., Awaitable[None]]
MAX_FILES_PER_MESSAGE = 5


@dataclass(slots=True)
class SurfaceDeps:
    queue: JobQueue
    store: Store
    metadata_key: bytes  # seals the modal's private_metadata (bot.slack.modal.metadata_key)
    access: Access | None = None  # RECON_ALLOWED_CHANNELS, RECON_USERS; None: anyone, anywhere
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))


def register_surfaces(app: AsyncApp, deps: SurfaceDeps) -> None:
    """The shortcuts, their modal, and CSV shares; before the catch-all ``message`` listener."""
    app.shortcut(MESSAGE_SHORTCUT)(shortcut(deps))
    app.shortcut(GLOBAL_SHORTCUT)(shortcut(deps))
    app.view(CALLBACK_ID)(submission(deps))
    app.event({"type": "message", "subtype": "file_share"})(file_shared(deps))


def shortcut(deps: SurfaceDeps) -> Listener:
    async def handle(ack: AsyncAck, shortcut: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        kind: Kind = "message" if shortcut.get("type") == "message_action" else "global"
        try:  # first, before anything that may take time: the trigger_id lives 3 s
            opened = (await client.views_open(trigger_id=shortcut.get("trigger_id"), view=loading_view(kind)))["view"]
        except SlackApiError as exc:
            log.warning("shortcut %s: views.open refused: %s", shortcut.get("callback_id"), exc.response.get("error"))
            return
        why = await _shortcut_refusal(deps.access, shortcut, kind)
        if why is not None:
            await _fill(client, opened, done_view(mrkdwn(why)))
            return
        message = shortcut.get("message") or {}
        now = deps.now()
        got = await prefill(client, message, now) if kind == "message" else Prefill(Mentions())
        try:
            view = form_view(origin_of(shortcut, got.export), got, now, deps.metadata_key)
        except BadInput:  # a payload without a usable channel or ts
            view = done_view(":warning: recon cannot tell where this message is; use `/recon` in its channel.")
        await _fill(client, opened, view)

    return handle


async def _shortcut_refusal(access: Access | None, shortcut: dict[str, Any], kind: Kind) -> str | None:
    """Why this shortcut is refused: its person, and (on a message) the message's channel.
    A global shortcut's channel is picked in the form, and checked at submission."""
    if access is None:
        return None
    user = str((shortcut.get("user") or {}).get("id") or "")
    channel = str((shortcut.get("channel") or {}).get("id") or "")
    why = await (access.refusal(channel, user) if kind == "message" else access.user_refusal(user))
    if why is not None:
        log.warning("refused the shortcut %s of %s in %s: %s", shortcut.get("callback_id"), user, channel or "-", why)
    return why


async def _fill(client: AsyncWebClient, opened: dict[str, Any], view: dict[str, Any]) -> None:
    """The modal opened (its loading view) becomes ``view``."""
    try:
        await client.views_update(view_id=opened["id"], hash=opened.get("hash"), view=view)
    except SlackApiError as exc:  # closed meanwhile, or changed (hash_conflict): nothing to fill
        log.info("shortcut: views.update of %s refused: %s", opened.get("id"), exc.response.get("error"))


def submission(deps: SurfaceDeps) -> Listener:
    async def handle(ack: AsyncAck, view: dict[str, Any], body: dict[str, Any]) -> None:
        user = str((body.get("user") or {}).get("id") or "") or None
        try:
            req = read_submission(view, deps.metadata_key, deps.now())
        except ModalInvalid as exc:
            await ack(response_action="errors", errors=exc.errors)
            return
        refused = await _submission_refusal(deps.access, req, user or "")
        if refused is not None:
            await ack(**refused)
            return
        export = (req.export.file_id, req.export.name) if req.export else None
        payload = reconcile_payload(req.subject, channel=req.channel, thread_ts=req.thread_ts, user=user,
                                    start=req.start, end=req.end, export=export, origin="shortcut")
        key = f"{KIND}:{req.channel}:{req.thread_ts or 'new'}:{subject_key(req.subject)}"
        try:
            job, created = await deps.queue.enqueue(KIND, key, payload)
        except StoreError:
            log.exception("could not store the reconcile request of %s", user)
            await ack(response_action="errors", errors={
                "correlation_id": "recon could not accept this request (its store is unavailable); try again."})
            return
        if created:
            log.info("queued job %s: reconcile %s for %s in %s", job.job_id, req.subject.label(), user, req.channel)
            await ack()
        else:
            await ack(response_action="update", view=done_view(
                f":hourglass_flowing_sand: A diagnosis of {req.subject.label()} for that thread is already "
                "running; its findings will appear there."))

    return handle


async def _submission_refusal(access: Access | None, req: ReconcileRequest, user: str) -> dict[str, Any] | None:
    """The answer to a submission refused (checked again: the form may have stayed open
    while the settings changed), or ``None``. A global shortcut's channel not allowed is
    shown on its picker; any other refusal replaces the form."""
    if access is None:
        return None
    if req.thread_ts is None and not access.channel_allowed(req.channel):  # picked in the form
        log.warning("refused a reconcile form of %s for %s: channel not allowed", user, req.channel)
        return {"response_action": "errors", "errors": {"channel": CHANNEL_NOT_PICKABLE}}
    why = await access.refusal(req.channel, user)
    if why is None:
        return None
    log.warning("refused a reconcile form of %s for %s: %s", user, req.channel, why)
    return {"response_action": "update", "view": done_view(mrkdwn(why))}


def file_shared(deps: SurfaceDeps) -> Listener:
    async def handle(body: dict[str, Any], event: dict[str, Any], request: AsyncBoltRequest,
                     client: AsyncWebClient) -> None:
        channel, thread_ts = str(event.get("channel") or ""), str(event.get("thread_ts") or "")
        csvs = csv_files(event)[:MAX_FILES_PER_MESSAGE]
        if not thread_ts or not channel or not csvs:
            return
        incident = await deps.store.incident_by_thread(channel, thread_ts)
        if incident is None:
            return
        event_id = str(body.get("event_id") or "")
        retry = _retry_num(request)
        if await _share_refused(deps, client, event, first=lambda: deps.queue.first_delivery(event_id, retry)):
            return
        for f in csvs:
            fid, name = str(f["id"]), file_name(f)
            payload = export_payload(incident.incident_id, channel=channel, thread_ts=thread_ts,
                                     user=event.get("user"), file_id=fid, name=name, now=deps.now())
            job, created = await deps.queue.accept_event(f"{event_id}:{fid}", retry, KIND,
                                                         f"{KIND}:file:{fid}", payload)
            if job is not None and created:
                log.info("queued job %s: export %s shared in %s's thread", job.job_id, fid, incident.incident_id)

    return handle


async def _share_refused(deps: SurfaceDeps, client: AsyncWebClient, event: dict[str, Any],
                         first: Callable[[], Awaitable[bool]]) -> bool:
    """Whether a CSV share in an incident's thread is refused (its person or its channel);
    if so the person is told, in the thread, only them, on the event's first delivery."""
    channel, user = str(event.get("channel") or ""), str(event.get("user") or "")
    why = await deps.access.refusal(channel, user) if deps.access is not None else None
    if why is None:
        return False
    log.warning("refused a CSV shared by %s in %s: %s", user or "-", channel, why)
    if user and await first():
        try:
            await client.chat_postEphemeral(channel=channel, user=user, thread_ts=event.get("thread_ts"),
                                            text=f"{why} (The CSV you shared was not read.)")
        except SlackApiError as exc:
            log.info("could not tell %s in %s: %s", user, channel, exc.response.get("error"))
    return True


def _retry_num(request: AsyncBoltRequest) -> int:
    v = request.headers.get("x-slack-retry-num")
    first = str(v[0]) if isinstance(v, list) and v else str(v or "")
    return int(first) if first.isdigit() else 0
