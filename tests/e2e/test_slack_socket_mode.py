"""Socket Mode: the bot dials out (apps.connections.open → WebSocket), gets envelopes,
acks them on the socket; the same /recon flow and the same once-only event handling."""

from __future__ import annotations

import json

import asyncpg
import httpx
import pytest

from tests.conftest import LoadedPlatform
from tests.e2e.conftest import thread_done
from tests.e2e.slackbot import InProcessBot, jobs_settled
from tests.standins.slack import SlackStandIn
from tests.standins.slack_requests import app_mention, slash_command

CHANNEL = "C0SOCKET"


@pytest.fixture
def bot_settings() -> dict[str, str]:
    return {"SLACK_APP_TOKEN": "xapp-1-A0-recon-test"}  # Socket Mode


async def test_slash_command_over_the_socket(bot: InProcessBot, slack_standin: SlackStandIn,
                                             live: LoadedPlatform) -> None:
    cid = live.platform.disputed_correlation_id
    assert cid
    form = slash_command(text=cid, channel_id=CHANNEL).form()
    env_id = await slack_standin.socket_send("slash_commands", form)
    ack = await slack_standin.wait_socket_ack(env_id)
    assert "Diagnosing" in json.dumps(ack.get("payload", {}))
    await slack_standin.wait_for(lambda _: thread_done(slack_standin, CHANNEL), timeout=30)
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
    await slack_standin.wait_for(lambda _: thread_done(slack_standin, CHANNEL), timeout=30)
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
