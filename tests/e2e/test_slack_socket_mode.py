"""Socket Mode: the bot dials out (apps.connections.open → WebSocket), gets envelopes,
acks them on the socket; the same /recon flow and the same once-only event handling."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest_asyncio

from tests.e2e.conftest import LoadedPlatform, load
from tests.e2e.slackbot import STEPS, InProcessBot, bot_env, bot_in_process, jobs_settled, live_platform
from tests.standins.slack import SlackStandIn
from tests.standins.slack_requests import app_mention, slash_command

CHANNEL = "C0SOCKET"


@pytest_asyncio.fixture
async def live(fresh_database: str, tmp_path: Path) -> LoadedPlatform:
    return await load(live_platform(), fresh_database, tmp_path / "evidence")


@pytest_asyncio.fixture
async def bot(live: LoadedPlatform, store_url: str, slack_standin: SlackStandIn) -> AsyncIterator[InProcessBot]:
    env = bot_env(store_url, live.billing_url, live.evidence, slack_standin, SLACK_APP_TOKEN="xapp-1-A0-recon-test")
    env.pop("SLACK_SIGNING_SECRET")
    async with bot_in_process(env) as b:
        await slack_standin.wait_socket_connected()
        yield b


def thread_done(slack: SlackStandIn) -> bool:
    msgs = slack.messages(CHANNEL)
    return bool(msgs) and len(slack.thread(CHANNEL, msgs[0].ts)) >= 1 + STEPS and "Drift" in json.dumps(msgs[0].blocks)


async def test_slash_command_over_the_socket(bot: InProcessBot, slack_standin: SlackStandIn,
                                             live: LoadedPlatform) -> None:
    cid = live.platform.disputed_correlation_id
    assert cid
    form = slash_command(text=cid, channel_id=CHANNEL).form()
    env_id = await slack_standin.socket_send("slash_commands", form)
    ack = await slack_standin.wait_socket_ack(env_id)
    assert "Diagnosing" in json.dumps(ack.get("payload", {}))
    await slack_standin.wait_for(lambda _: thread_done(slack_standin), timeout=30)
    async with httpx.AsyncClient() as http:  # no signing secret: no HTTP events in Socket Mode
        r = await http.post(f"{bot.url}/slack/events", content=b"{}", headers={"Content-Type": "application/json"})
    assert r.status_code == 404


async def test_a_retried_event_envelope_is_handled_once(bot: InProcessBot, slack_standin: SlackStandIn,
                                                        live: LoadedPlatform, store_url: str) -> None:
    cid = live.platform.disputed_correlation_id
    assert cid
    envelope = {"token": "x", "team_id": "T0TEST", "api_app_id": "A0RECON", "type": "event_callback",
                "event_id": "Ev0SOCKET", "event_time": 1_700_000_000,
                "event": app_mention("U0ONCALL", f"<@U0RECON> {cid}", CHANNEL)}
    ids = [await slack_standin.socket_send("events_api", envelope)]
    for n in (1, 2):
        ids.append(await slack_standin.socket_send("events_api", envelope, retry_attempt=n, retry_reason="timeout"))
    for i in ids:
        await slack_standin.wait_socket_ack(i)
    await slack_standin.wait_for(lambda _: thread_done(slack_standin), timeout=30)
    conn = await asyncpg.connect(store_url)
    try:
        assert await conn.fetchval("select count(*) from jobs") == 1
    finally:
        await conn.close()
    await jobs_settled(store_url, 1)
    thread_keys = [(c.args.get("metadata") or {}).get("event_payload", {}).get("key")
                   for c in slack_standin.calls_to("chat.postMessage")]
    assert sorted(k for k in thread_keys if k == "parent" or str(k).startswith("step:")) == sorted(
        ["parent", "step:logs", "step:billing_rows", "step:trace", "step:pivot", "step:attribution",
         "step:reconciliation"])
