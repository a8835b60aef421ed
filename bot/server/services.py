"""Everything ``recon serve`` runs on, built once from the settings and closed in order."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot.flows.diagnose import SourceSet
from bot.flows.slack_diagnosis import KIND as DIAGNOSE
from bot.flows.slack_diagnosis import SlackDiagnosisDeps, run_diagnosis_job
from bot.settings import Settings
from bot.slack.client import web_client
from bot.store.db import open_store, store_url
from bot.store.jobs import Job, JobQueue
from bot.store.store import Store
from bot.wiring import open_sources
from bot.worker import Worker
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
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))


def build_bolt(settings: Settings, client: AsyncWebClient, queue: JobQueue) -> AsyncApp:
    secret = settings.slack_signing_secret.get_secret_value() if settings.slack_signing_secret else None
    app = AsyncApp(
        client=client,
        signing_secret=secret,
        # Socket Mode has no signatures; HTTP mode verifies them (and so does our route)
        request_verification_enabled=secret is not None,
        process_before_response=False,
        logger=logging.getLogger("recon.bolt"),
    )
    register(app, SlackHandlerDeps(queue=queue))
    return app


@contextlib.asynccontextmanager
async def running_services(settings: Settings) -> AsyncIterator[Services]:
    url = await store_url(settings)
    store = await open_store(settings)
    queue = JobQueue(store.pool)
    client = web_client(settings)
    try:
        async with open_sources(settings) as sources:
            deps = SlackDiagnosisDeps(settings=settings, store=store, queue=queue, sources=sources, slack=client)

            async def diagnose(job: Job) -> dict[str, object]:
                return dict(await run_diagnosis_job(job, deps))

            worker = Worker(queue, {DIAGNOSE: diagnose}, listen_url=url, lease_s=settings.job_lease_s,
                            slots=settings.worker_slots, poll_s=settings.worker_poll_s,
                            grace_s=settings.shutdown_grace_s)
            bolt = build_bolt(settings, client, queue)
            yield Services(settings, store, queue, sources, client, bolt, worker, url)
    finally:
        await store.close()
