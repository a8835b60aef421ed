"""Alert intake: ``POST /alerts/alertmanager`` (webhook payload version 4) and
``POST /alerts/grafana`` (Grafana alerting), and alert posts in watched Slack channels.

Thin: check the bearer token, the size and the shape (a large body in its turn:
``bot.store.intake.Turns``), keeping a digest of the notification (``NotificationDigest``); store it and
queue its triage in one transaction (with the notifications that arrive meanwhile: group
commit); answer. The body is stored as received. The triage itself runs in a worker. A
store failure answers 503, which Alertmanager retries: nothing accepted is lost.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from bot.alerts import NotificationDigest, PayloadError, parse_alert_post, parse_grafana
from bot.alerts.parse import digest_alertmanager_json, loads_strict
from bot.alerts.routing import RoutingTable
from bot.alerts.slack_posts import from_alert_bot
from bot.alerts.subject import subject_from_labels
from bot.errors import BadInput, StoreError
from bot.metrics import Metrics
from bot.store.alerts import AlertStore, Intake
from bot.store.db import canonical_json
from bot.store.intake import Turns

log = logging.getLogger(__name__)


@dataclass(slots=True)
class AlertIntakeDeps:
    alerts: AlertStore
    routes: RoutingTable
    token: str | None
    max_body_bytes: int
    watch_channels: frozenset[str]
    alert_bots: frozenset[str] | None = None  # RECON_ALERT_BOTS; None: any bot
    metrics: Metrics | None = None
    turns: Turns = field(default_factory=Turns)


async def accept(deps: AlertIntakeDeps, n: NotificationDigest, payload_json: str,
                 anchor_ts: str | None = None, channel: str | None = None,
                 event_id: str | None = None, retry_num: int = 0) -> Intake | None:
    labels = n.labels
    subject = subject_from_labels(labels)
    if channel is None:
        channel, route = deps.routes.choose(labels)
        if channel is None:
            log.warning("alert group %s (%s) stored but not posted: %s", n.group_key, labels.get("alertname"), route)
    else:
        route = "the channel it was posted in"
    intake = await deps.alerts.intake(n, channel=channel, route=route,
                                      subject=subject.model_dump(mode="json", exclude_none=True) if subject else {},
                                      payload_json=payload_json, anchor_ts=anchor_ts, event_id=event_id,
                                      retry_num=retry_num)
    if intake is None:
        return None
    if deps.metrics is not None:
        deps.metrics.alerts.labels(n.source).inc(n.alerts)
        deps.metrics.alert_notifications.labels(n.source, intake.action).inc()
        if intake.action == "repeat":
            deps.metrics.alerts_deduplicated.labels(n.source).inc()
    return intake


def _refuse(status: int, reason: str) -> web.Response:
    headers = {"WWW-Authenticate": 'Bearer realm="recon alerts"'} if status == 401 else None
    return web.json_response({"status": "refused", "error": reason}, status=status, headers=headers)


def webhook(deps: AlertIntakeDeps, parse: Callable[[str], NotificationDigest], name: str
            ) -> Callable[[web.Request], Any]:
    """The route of one sender: ``parse`` takes the body's text (``PayloadError`` for a
    wrong shape, ``ValueError`` for text that is not JSON)."""
    async def handle(request: web.Request) -> web.Response:
        if deps.token is None:
            log.warning("refused a %s webhook: ALERT_WEBHOOK_TOKEN is not set, so every request is refused", name)
            return _refuse(401, "alert webhooks are disabled: the bot has no ALERT_WEBHOOK_TOKEN")
        auth = request.headers.get("Authorization", "")
        scheme, _, given = auth.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), deps.token.encode()):
            log.warning("refused a %s webhook from %s: missing or wrong bearer token", name, request.remote)
            return _refuse(401, "missing or wrong bearer token")
        if request.content_length is not None and request.content_length > deps.max_body_bytes:
            return _refuse(413, f"body larger than {deps.max_body_bytes} bytes")
        try:
            raw = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return _refuse(413, f"body larger than {deps.max_body_bytes} bytes")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            return _refuse(400, "body is not UTF-8")
        try:
            n = await deps.turns.run(parse, text)
        except PayloadError as exc:
            return _refuse(400, f"not a {name} notification: {exc}")
        except ValueError as exc:  # JSONDecodeError, or NaN/Infinity
            return _refuse(400, f"body is not JSON: {exc}")
        try:
            intake = await accept(deps, n, text)
            assert intake is not None  # only Slack events can be repeats of themselves
        except BadInput as exc:
            return _refuse(400, f"not a storable {name} notification: {exc}")
        except StoreError:
            log.exception("could not store a %s notification; the sender will retry", name)
            return web.json_response({"status": "error", "error": "store unavailable; retry"}, status=503)
        log.info("%s notification for group %s: %s (%d alerts)", name, intake.group.group_id, intake.action,
                 n.alerts)
        return web.json_response({"status": "accepted", "group_id": intake.group.group_id,
                                  "action": intake.action, "queued": intake.job_id is not None})

    return handle


def add_routes(app: web.Application, deps: AlertIntakeDeps) -> None:
    app.router.add_post("/alerts/alertmanager", webhook(deps, digest_alertmanager_json, "Alertmanager"))
    app.router.add_post("/alerts/grafana", webhook(deps, lambda text: parse_grafana(loads_strict(text)).digest(),
                                                   "Grafana"))


async def alert_post(deps: AlertIntakeDeps, event: Mapping[str, Any], *, event_id: str | None = None,
                     retry_num: int = 0) -> Intake | None:
    """An alert posted in a watched channel by another integration: triaged in its own
    thread. Anything else (people talking, other bots' chatter, bots not in
    ``RECON_ALERT_BOTS``) is left alone."""
    channel = str(event.get("channel") or "")
    if channel not in deps.watch_channels or not from_alert_bot(event, deps.alert_bots):
        if event.get("bot_id") and channel in deps.watch_channels:
            log.info("post %s in %s by bot %s not taken: not in RECON_ALERT_BOTS", event.get("ts"), channel,
                     event.get("bot_id"))
        return None
    if event.get("subtype") not in (None, "bot_message") or event.get("thread_ts") not in (None, event.get("ts")):
        return None
    n = parse_alert_post(event)
    if n is None:
        return None
    return await accept(deps, n.digest(), canonical_json({"slack_event": dict(event)}), anchor_ts=str(event.get("ts")),
                        channel=channel, event_id=event_id, retry_num=retry_num)
