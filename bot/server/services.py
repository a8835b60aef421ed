"""Everything ``recon serve`` runs on, built once from the settings and closed in order."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot.alerts.routing import RoutingTable, load_routes
from bot.alerts.slack_posts import bot_ids
from bot.flows.alert_triage import AlertDeps
from bot.flows.approvals import ApprovalFlow
from bot.flows.diagnosis import SourceSet
from bot.flows.followup_tickets import TicketServices
from bot.flows.given_up import given_up_reporter
from bot.flows.slack_diagnosis import SlackDiagnosisDeps
from bot.metrics import Metrics
from bot.report.tokens import report_secret
from bot.server.consumers import JobConsumers
from bot.settings import Settings
from bot.slack.access import Access, open_warnings
from bot.slack.approvers import Approvers
from bot.slack.client import web_client
from bot.slack.modal import metadata_key
from bot.slack.pace import ChannelPacer
from bot.store.alerts import AlertStore
from bot.store.approvals import ApprovalStore
from bot.store.db import connect_pool
from bot.store.intake import warm_up
from bot.store.jobs import JobQueue
from bot.store.opening import open_store, store_url
from bot.store.store import Store
from bot.tracker.base import Tracker
from bot.tracker.build import tracker_from_settings
from bot.wiring import open_sources
from bot.worker import Worker
from handlers.alerts import AlertIntakeDeps
from handlers.shortcuts import SurfaceDeps
from handlers.slack import SlackHandlerDeps, register

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Services:
    settings: Settings
    store: Store
    queue: JobQueue
    sources: SourceSet
    slack: AsyncWebClient
    bolt: AsyncApp
    worker: Worker
    store_url: str
    alerts: AlertStore
    alert_intake: AlertIntakeDeps
    routes: RoutingTable
    approvals: ApprovalFlow
    metrics: Metrics
    tracker: Tracker | None = None
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))


def build_bolt(settings: Settings, client: AsyncWebClient, queue: JobQueue,
               alert_intake: AlertIntakeDeps | None = None, approvals: ApprovalFlow | None = None,
               surfaces: SurfaceDeps | None = None) -> AsyncApp:
    secret = settings.slack_signing_secret.get_secret_value() if settings.slack_signing_secret else None
    app = AsyncApp(
        client=client,
        signing_secret=secret,
        # Socket Mode has no signatures; HTTP mode verifies them (and so does our route)
        request_verification_enabled=secret is not None,
        process_before_response=False,
        logger=logging.getLogger("recon.bolt"),
    )
    access = Access.from_settings(client, settings.allowed_channels, settings.users,
                                  refresh_s=settings.approvers_refresh_s)
    register(app, SlackHandlerDeps(queue=queue, alerts=alert_intake, approvals=approvals, access=access,
                                   surfaces=surfaces))
    return app


def _warn_open(settings: Settings, intake: AlertIntakeDeps) -> None:
    """Once at start: the settings left open (README, "Security")."""
    if intake.watch_channels and intake.alert_bots is None:
        log.warning("RECON_ALERT_BOTS is not set: any bot's post in RECON_WATCH_CHANNELS is taken as an alert")
    for warning in open_warnings(settings.allowed_channels, settings.users):
        log.warning("%s", warning)


@contextlib.asynccontextmanager
async def running_services(settings: Settings) -> AsyncIterator[Services]:
    routes = load_routes(settings.alert_routes, settings.alert_channel)
    tracker = tracker_from_settings(settings)  # ConfigError naming a missing or bad RECON_TRACKER setting
    try:
        async with _serving(settings, routes, tracker) as svc:
            yield svc
    finally:
        if tracker is not None:
            await tracker.aclose()


@contextlib.asynccontextmanager
async def _serving(settings: Settings, routes: RoutingTable, tracker: Tracker | None) -> AsyncIterator[Services]:
    url = await store_url(settings)
    store = await open_store(settings)
    try:
        # the alert intake writes on a connection of its own: jobs holding store
        # connections never make a webhook wait. It is kept open and warmed up
        # (bot.store.intake.warm_up), so that a storm after a quiet night does not begin
        # with a new connection's costs
        intake_pool = await connect_pool(url, min_size=1, max_size=1, max_inactive_s=0, warm=warm_up)
    except BaseException:
        await store.close()
        raise
    queue = JobQueue(store.pool)
    alerts = AlertStore(store.pool, reopen_s=settings.alert_reopen_s, storm_threshold=settings.storm_threshold,
                        storm_window_s=settings.storm_window_s, storm_gather_s=settings.storm_gather_s,
                        intake_pool=intake_pool)
    token = settings.alert_webhook_token.get_secret_value() if settings.alert_webhook_token else None
    if token is None:
        log.warning("ALERT_WEBHOOK_TOKEN is not set: the alert webhooks refuse every request")
    if not routes.routes and not routes.default_channel:
        log.warning("no alert routes and no RECON_ALERT_CHANNEL: alert groups are stored but not posted")
    intake = AlertIntakeDeps(alerts=alerts, routes=routes, token=token, max_body_bytes=settings.max_body_bytes,
                             watch_channels=frozenset(c.strip() for c in settings.watch_channels.split(",")
                                                      if c.strip()),
                             alert_bots=bot_ids(settings.alert_bots))
    _warn_open(settings, intake)
    metrics = Metrics()
    intake.metrics = metrics
    client = web_client(settings, metrics=metrics)
    pacer = ChannelPacer(settings.slack_rate_per_s, settings.slack_burst)
    approvals = ApprovalFlow(metrics=metrics, settings=settings, store=store, approvals=ApprovalStore(store.pool),
                             queue=queue, slack=client, approvers=Approvers(client, settings.approvers,
                                                               refresh_s=settings.approvers_refresh_s),
                             pacer=pacer)
    if not approvals.approvers.configured:
        log.warning("RECON_APPROVERS is not set: nobody can approve a freeze, and prompts say so")
    try:
        async with open_sources(settings) as sources:
            await sources.prepare()
            deps = SlackDiagnosisDeps(settings=settings, store=store, queue=queue, sources=sources, slack=client,
                                      approvals=approvals, metrics=metrics)

            alert_deps = AlertDeps(settings=settings, store=store, alerts=alerts, queue=queue, sources=sources,
                                   slack=client, pacer=pacer, approvals=approvals, metrics=metrics)

            tickets = (TicketServices(settings=settings, store=store, queue=queue, slack=client, tracker=tracker,
                                      pacer=pacer) if tracker is not None else None)
            consumers = JobConsumers(diagnosis=deps, alerts=alert_deps, approvals=approvals, tickets=tickets)
            worker = Worker(queue, consumers.handlers(), listen_url=url, lease_s=settings.job_lease_s,
                            slots=settings.worker_slots, poll_s=settings.worker_poll_s,
                            grace_s=settings.shutdown_grace_s, metrics=metrics,
                            before_claim=alerts.writer.quiet, on_give_up=given_up_reporter(queue, client))
            bolt = build_bolt(settings, client, queue, intake, approvals,
                              SurfaceDeps(queue, store, metadata_key(await report_secret(settings, store.pool))))
            yield Services(settings, store, queue, sources, client, bolt, worker, url, alerts, intake, routes,
                           approvals, metrics, tracker)
    finally:
        await alerts.aclose()
        await intake_pool.close()
        await store.close()
