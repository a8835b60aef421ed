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
        message = shortcut.get("message") or {}
        now = deps.now()
        got = await prefill(client, message, now) if kind == "message" else Prefill(Mentions())
        try:
            view = form_view(origin_of(shortcut, got.export), got, now, deps.metadata_key)
        except BadInput:  # a payload without a usable channel or ts
            view = done_view(":warning: recon cannot tell where this message is; use `/recon` in its channel.")
        try:
            await client.views_update(view_id=opened["id"], hash=opened.get("hash"), view=view)
        except SlackApiError as exc:  # closed meanwhile, or changed (hash_conflict): nothing to fill
            log.info("shortcut: views.update of %s refused: %s", opened.get("id"), exc.response.get("error"))

    return handle


def submission(deps: SurfaceDeps) -> Listener:
    async def handle(ack: AsyncAck, view: dict[str, Any], body: dict[str, Any]) -> None:
        user = str((body.get("user") or {}).get("id") or "") or None
        try:
            req = read_submission(view, deps.metadata_key, deps.now())
        except ModalInvalid as exc:
            await ack(response_action="errors", errors=exc.errors)
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


def file_shared(deps: SurfaceDeps) -> Listener:
    async def handle(body: dict[str, Any], event: dict[str, Any], request: AsyncBoltRequest) -> None:
        channel, thread_ts = str(event.get("channel") or ""), str(event.get("thread_ts") or "")
        csvs = csv_files(event)[:MAX_FILES_PER_MESSAGE]
        if not thread_ts or not channel or not csvs:
            return
        incident = await deps.store.incident_by_thread(channel, thread_ts)
        if incident is None:
            return
        event_id = str(body.get("event_id") or "")
        retry = _retry_num(request)
        for f in csvs:
            fid, name = str(f["id"]), file_name(f)
            payload = export_payload(incident.incident_id, channel=channel, thread_ts=thread_ts,
                                     user=event.get("user"), file_id=fid, name=name, now=deps.now())
            job, created = await deps.queue.accept_event(f"{event_id}:{fid}", retry, KIND,
                                                         f"{KIND}:file:{fid}", payload)
            if job is not None and created:
                log.info("queued job %s: export %s shared in %s's thread", job.job_id, fid, incident.incident_id)

    return handle


def _retry_num(request: AsyncBoltRequest) -> int:
    v = request.headers.get("x-slack-retry-num")
    first = str(v[0]) if isinstance(v, list) and v else str(v or "")
    return int(first) if first.isdigit() else 0
