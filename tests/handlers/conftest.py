"""The handler layer through the real app: ``recon serve``'s services and aiohttp app
(``running_services`` + ``build_app``) on loopback, the real store, the Slack stand-in
for the Web API, and no worker running, so every job a request queues stays queued
for the test to read (``HandlerApp.jobs``)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest_asyncio
from aiohttp.test_utils import TestServer

from bot.server.app import build_app
from bot.server.services import Services, running_services
from bot.settings import Settings
from bot.store.jobs import NOTIFY_CHANNEL
from tests.standins.slack import SlackStandIn
from tests.standins.slack_requests import DEFAULT_SIGNING_SECRET, SlackRequest, post

ALERT_TOKEN = "handlers-test-alert-token"
ALERT_CHANNEL = "C0ALERTS"
WATCHED = "C0WATCHED"
APPROVER = "U0APPROVER"


@dataclass(slots=True)
class HandlerApp:
    url: str
    svc: Services
    http: httpx.AsyncClient
    store_url: str
    queued: asyncio.Queue[str]  # one item per NOTIFY recon_jobs (a job was queued)

    async def slack(self, req: SlackRequest) -> httpx.Response:
        return await post(self.http, f"{self.url}/slack/events", req)

    async def jobs(self) -> list[dict[str, Any]]:
        """Every job in the store, oldest first."""
        conn = await asyncpg.connect(self.store_url)
        try:
            rows = await conn.fetch("SELECT kind, dedup_key, payload, status FROM jobs ORDER BY job_id")
        finally:
            await conn.close()
        return [dict(r) | {"payload": json.loads(r["payload"])} for r in rows]

    async def next_queued(self) -> None:
        """Wait for the next job queued (for listeners that run after the ack)."""
        await asyncio.wait_for(self.queued.get(), 10)


def settings_for(store_url: str, slack: SlackStandIn, tmp: Path, **extra: str) -> Settings:
    env = {
        "DATABASE_URL": store_url,
        "BILLING_DATABASE_URL": store_url,  # never read: no diagnosis runs here
        "SLACK_BOT_TOKEN": "xoxb-recon-test-token",
        "SLACK_SIGNING_SECRET": DEFAULT_SIGNING_SECRET,
        "SLACK_API_URL": slack.url.rstrip("/"),
        "ALERT_WEBHOOK_TOKEN": ALERT_TOKEN,
        "RECON_ALERT_CHANNEL": ALERT_CHANNEL,
        "RECON_WATCH_CHANNELS": WATCHED,
        "RECON_APPROVERS": APPROVER,
        "RECON_MAX_BODY_BYTES": "65536",
    } | extra
    return Settings(**env)  # type: ignore[arg-type]


@contextlib.asynccontextmanager
async def _listening(url: str) -> AsyncIterator[asyncio.Queue[str]]:
    queued: asyncio.Queue[str] = asyncio.Queue()
    conn = await asyncpg.connect(url)
    await conn.add_listener(NOTIFY_CHANNEL, lambda *args: queued.put_nowait(str(args[-1])))
    try:
        yield queued
    finally:
        await conn.close()


@pytest_asyncio.fixture
async def app(store_url: str, slack_standin: SlackStandIn, tmp_path: Path) -> AsyncIterator[HandlerApp]:
    async with running_app(store_url, slack_standin, tmp_path) as handler_app:
        yield handler_app


@contextlib.asynccontextmanager
async def running_app(store_url: str, slack: SlackStandIn, tmp: Path, **extra: str) -> AsyncIterator[HandlerApp]:
    """The app with the settings of ``settings_for`` and ``extra`` (more environment)."""
    settings = settings_for(store_url, slack, tmp, **extra)
    async with running_services(settings) as svc, _listening(store_url) as queued:
        server = TestServer(build_app(svc), host="127.0.0.1")
        await server.start_server()
        try:
            async with httpx.AsyncClient(timeout=10) as http:
                yield HandlerApp(str(server.make_url("")).rstrip("/"), svc, http, store_url, queued)
        finally:
            await server.close()
