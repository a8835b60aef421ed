"""The Slack stand-in and request builders, driven by the real slack_sdk / slack_bolt clients."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from typing import Any

import aiohttp
import httpx
import pytest
from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_bolt.context.say.async_say import AsyncSay
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.http_retry.builtin_interval_calculators import FixedValueRetryIntervalCalculator
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from tests.standins.slack import BOT_ID, BOT_USER_ID, SlackCall, SlackStandIn
from tests.standins.slack_requests import (
    DEFAULT_SIGNING_SECRET,
    SlackRequest,
    block_actions,
    bolt_request,
    button,
    event_callback,
    message,
    post,
    reaction_added,
    reaction_removed,
    sign,
    signature,
    slash_command,
    url_verification,
)

FAST = FixedValueRetryIntervalCalculator(fixed_internal=0.01)


def client_for(slack: SlackStandIn, *, retry_handlers: list[Any] | None = None) -> AsyncWebClient:
    client = AsyncWebClient(token="xoxb-test", base_url=slack.url)
    if retry_handlers is not None:
        client.retry_handlers = retry_handlers
    return client


# ---------------------------------------------------------------- Web API


async def test_auth_test_and_url_shape(slack_standin: SlackStandIn) -> None:
    assert slack_standin.url.endswith("/api/")
    resp = await client_for(slack_standin).auth_test()
    assert resp.data == {
        "ok": True,
        "url": "https://recon-test.slack.com/",
        "team": "T",
        "user": "recon",
        "team_id": "T0TEST",
        "user_id": "U0RECON",
        "bot_id": "B0RECON",
        "is_enterprise_install": False,
    }
    (call,) = slack_standin.calls_to("auth.test")
    assert call.token == "xoxb-test" and call.header("authorization") == "Bearer xoxb-test"


async def test_thread_roundtrip_in_order_with_metadata(slack_standin: SlackStandIn) -> None:
    client = client_for(slack_standin)
    meta = {"event_type": "recon_incident", "event_payload": {"incident_id": "inc-1"}}
    parent = await client.chat_postMessage(
        channel="C1", text="Incident inc-1", blocks=[{"type": "section", "text": {"type": "mrkdwn", "text": "hi"}}]
    )
    assert parent["ok"] and parent["channel"] == "C1" and parent["ts"] == "1700000000.000100"
    assert parent["message"]["bot_id"] == BOT_ID and parent["message"]["user"] == BOT_USER_ID
    replies = [
        await client.chat_postMessage(channel="C1", thread_ts=parent["ts"], text=f"step {i}", metadata=meta)
        for i in range(3)
    ]
    other = await client.chat_postMessage(channel="C2", text="elsewhere")
    broadcast = await client.chat_postMessage(
        channel="C1", thread_ts=parent["ts"], text="verdict", reply_broadcast=True
    )
    tss = [parent["ts"], *(r["ts"] for r in replies), other["ts"], broadcast["ts"]]
    assert tss == sorted(tss, key=float) and len(set(tss)) == len(tss)

    got = await client.conversations_replies(channel="C1", ts=parent["ts"])
    msgs = got["messages"]
    assert [m["text"] for m in msgs] == ["Incident inc-1", "step 0", "step 1", "step 2", "verdict"]
    assert msgs[0]["reply_count"] == 4 and msgs[0]["thread_ts"] == parent["ts"]
    assert all(m["thread_ts"] == parent["ts"] for m in msgs[1:])
    assert msgs[-1]["subtype"] == "thread_broadcast"
    assert "metadata" not in msgs[1]  # Slack returns metadata only when asked
    with_meta = await client.conversations_replies(channel="C1", ts=replies[1]["ts"], include_all_metadata=True)
    assert [m.get("metadata") for m in with_meta["messages"][1:4]] == [meta] * 3

    assert [m.text for m in slack_standin.messages("C1")] == ["Incident inc-1"]
    assert [m.text for m in slack_standin.messages("C1", broadcasts=True)] == ["Incident inc-1", "verdict"]
    assert [m.ts for m in slack_standin.thread("C1", parent["ts"])] == [tss[0], *tss[1:4], tss[5]]
    # what slack_sdk sends: chat.* as JSON, conversations.replies as GET + query
    post_call = slack_standin.calls_to("chat.postMessage")[0]
    assert post_call.content_type == "application/json" and post_call.http_method == "POST"
    assert post_call.args["blocks"][0]["type"] == "section"
    replies_call = slack_standin.calls_to("conversations.replies")[1]
    assert replies_call.http_method == "GET" and replies_call.args["include_all_metadata"] == "1"


async def test_replies_paginate_with_cursor(slack_standin: SlackStandIn) -> None:
    client = client_for(slack_standin)
    parent = await client.chat_postMessage(channel="C1", text="p")
    for i in range(4):
        await client.chat_postMessage(channel="C1", thread_ts=parent["ts"], text=f"r{i}")
    pages: list[tuple[list[str], bool]] = []
    # the response object iterates by replacing its own data: read each page as it comes
    async for page in await client.conversations_replies(channel="C1", ts=parent["ts"], limit=2):
        pages.append(([m["text"] for m in page["messages"]], page["has_more"]))
    assert pages == [(["p", "r0"], True), (["r1", "r2"], True), (["r3"], False)]
    with pytest.raises(SlackApiError) as err:
        await client.conversations_replies(channel="C1", ts=parent["ts"], cursor="bm9wZQ==")
    assert err.value.response["error"] == "invalid_cursor"


async def test_chat_update_changes_the_stored_message(slack_standin: SlackStandIn) -> None:
    client = client_for(slack_standin)
    parent = await client.chat_postMessage(channel="C1", text="working…")
    upd = await client.chat_update(channel="C1", ts=parent["ts"], text="done", blocks=[{"type": "divider"}])
    assert upd["ts"] == parent["ts"] and upd["text"] == "done" and "edited" in upd["message"]
    msg = slack_standin.message("C1", parent["ts"])
    assert msg is not None and msg.text == "done" and msg.blocks == [{"type": "divider"}]
    assert msg.history == [{"text": "working…", "blocks": None, "attachments": None}]
    with pytest.raises(SlackApiError) as err:
        await client.chat_update(channel="C1", ts="1600000000.000001", text="x")
    assert err.value.response["error"] == "message_not_found"
    alert = slack_standin.add_message("C1", "alert from someone else", bot_id="B0ALERTS")
    with pytest.raises(SlackApiError) as err:
        await client.chat_update(channel="C1", ts=alert.ts, text="x")
    assert err.value.response["error"] == "cant_update_message"


async def test_thread_not_found_and_channel_rules(slack_standin: SlackStandIn) -> None:
    client = client_for(slack_standin)
    with pytest.raises(SlackApiError) as err:
        await client.chat_postMessage(channel="C1", thread_ts="1600000000.000001", text="x")
    assert err.value.response["error"] == "thread_not_found"
    parent = await client.chat_postMessage(channel="C1", text="p")
    reply = await client.chat_postMessage(channel="C1", thread_ts=parent["ts"], text="r")
    with pytest.raises(SlackApiError) as err:  # a reply's ts is not a thread
        await client.chat_postMessage(channel="C1", thread_ts=reply["ts"], text="x")
    assert err.value.response["error"] == "thread_not_found"
    with pytest.raises(SlackApiError) as err:  # the parent lives in C1, not C2
        await client.chat_postMessage(channel="C2", thread_ts=parent["ts"], text="x")
    assert err.value.response["error"] == "thread_not_found"
    with pytest.raises(SlackApiError) as err, pytest.warns(UserWarning, match="`text` argument is missing"):
        await client.chat_postMessage(channel="C1")
    assert err.value.response["error"] == "no_text"
    slack_standin.allow_channels("C1")
    await client.chat_postMessage(channel="C1", text="fine")
    with pytest.raises(SlackApiError) as err:
        await client.chat_postMessage(channel="C9", text="x")
    assert err.value.response["error"] == "channel_not_found"
    assert [c.error for c in slack_standin.calls] == [
        "thread_not_found",
        None,
        None,
        "thread_not_found",
        "thread_not_found",
        "no_text",
        None,
        "channel_not_found",
    ]


async def test_rate_limit_is_honoured_by_the_retry_handler(slack_standin: SlackStandIn) -> None:
    client = client_for(slack_standin, retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=2)])
    slack_standin.rate_limit("chat.postMessage", times=1, retry_after=1)
    resp = await client.chat_postMessage(channel="C1", text="hello")
    assert resp["ok"]
    first, second = slack_standin.calls_to("chat.postMessage")
    assert (first.status, first.response, second.status) == (429, {"ok": False, "error": "ratelimited"}, 200)
    assert second.at - first.at >= 1.0
    assert [m.text for m in slack_standin.messages("C1")] == ["hello"]


async def test_rate_limit_surfaces_without_a_retry_handler(slack_standin: SlackStandIn) -> None:
    client = client_for(slack_standin, retry_handlers=[])
    slack_standin.rate_limit(None, times=2, retry_after=7)
    for _ in range(2):
        with pytest.raises(SlackApiError) as err:
            await client.chat_update(channel="C1", ts="1.0", text="x")
        assert err.value.response.status_code == 429
        assert err.value.response.headers["Retry-After"] == "7"
        assert err.value.response["error"] == "ratelimited"
    assert (await client.auth_test())["ok"]  # the rule was used up
    assert slack_standin.messages("C1") == []


async def test_server_errors_surface_and_retry(slack_standin: SlackStandIn) -> None:
    slack_standin.fail("chat.postMessage", status=500, times=1)
    with pytest.raises(SlackApiError) as err:
        await client_for(slack_standin, retry_handlers=[]).chat_postMessage(channel="C1", text="x")
    assert err.value.response.status_code == 500
    slack_standin.fail("chat.postMessage", status=503, times=2)
    retrying = client_for(slack_standin, retry_handlers=[AsyncServerErrorRetryHandler(2, FAST)])
    assert (await retrying.chat_postMessage(channel="C1", text="y"))["ok"]
    assert [c.status for c in slack_standin.calls_to("chat.postMessage")] == [500, 503, 503, 200]
    assert [m.text for m in slack_standin.messages("C1")] == ["y"]


async def test_error_and_dropped_connection(slack_standin: SlackStandIn) -> None:
    slack_standin.error("chat.postMessage", "missing_scope", needed="chat:write")
    with pytest.raises(SlackApiError) as err:
        await client_for(slack_standin).chat_postMessage(channel="C1", text="x")
    assert err.value.response.status_code == 200 and err.value.response["needed"] == "chat:write"

    slack_standin.drop_connection("chat.postMessage", times=1)
    with pytest.raises(aiohttp.ClientError):
        await client_for(slack_standin, retry_handlers=[]).chat_postMessage(channel="C1", text="x")
    slack_standin.drop_connection("chat.postMessage", times=1)
    retrying = client_for(slack_standin, retry_handlers=[AsyncConnectionErrorRetryHandler(1, FAST)])
    assert (await retrying.chat_postMessage(channel="C1", text="z"))["ok"]
    assert [c.status for c in slack_standin.calls] == [200, 0, 0, 200]
    assert [m.text for m in slack_standin.messages("C1")] == ["z"]


async def test_delay(slack_standin: SlackStandIn) -> None:
    slack_standin.delay_s = 0.2
    client = AsyncWebClient(token="xoxb-test", base_url=slack_standin.url, timeout=1)
    started = time.monotonic()
    await client.auth_test()
    answered = time.monotonic()
    assert answered - started >= 0.2
    assert answered - slack_standin.calls[0].at >= 0.2 - 1e-3  # arrival time, not answer time


async def test_other_methods(slack_standin: SlackStandIn) -> None:
    client = client_for(slack_standin)
    slack_standin.usergroups["S1"] = ["U1", "U2"]
    assert (await client.usergroups_users_list(usergroup="S1"))["users"] == ["U1", "U2"]
    with pytest.raises(SlackApiError) as err:
        await client.usergroups_users_list(usergroup="S9")
    assert err.value.response["error"] == "no_such_subteam"

    slack_standin.users["U1"] = {"real_name": "Ada Lovelace"}
    user = (await client.users_info(user="U1"))["user"]
    assert user["id"] == "U1" and user["real_name"] == "Ada Lovelace" and user["is_bot"] is False

    eph = await client.chat_postEphemeral(channel="C1", user="U1", text="only you")
    assert slack_standin.ephemerals[0].message_ts == eph["message_ts"] and slack_standin.messages("C1") == []

    parent = await client.chat_postMessage(channel="C1", text="p")
    reply = await client.chat_postMessage(channel="C1", thread_ts=parent["ts"], text="r")
    link = await client.chat_getPermalink(channel="C1", message_ts=parent["ts"])
    assert link["permalink"] == f"https://recon-test.slack.com/archives/C1/p{parent['ts'].replace('.', '')}"
    rlink = await client.chat_getPermalink(channel="C1", message_ts=reply["ts"])
    assert rlink["permalink"].endswith(f"?thread_ts={parent['ts']}&cid=C1")

    await client.reactions_add(channel="C1", timestamp=parent["ts"], name="eyes")
    with pytest.raises(SlackApiError) as err:
        await client.reactions_add(channel="C1", timestamp=parent["ts"], name="eyes")
    assert err.value.response["error"] == "already_reacted"
    assert slack_standin.thread("C1", parent["ts"])[0].reactions == {"eyes": [BOT_USER_ID]}
    react = slack_standin.calls_to("reactions.add")[0]
    assert react.args == {"channel": "C1", "timestamp": parent["ts"], "name": "eyes"}  # sent as query params

    with pytest.raises(SlackApiError) as err:
        await client.api_call("conversations.kick", json={"channel": "C1"})
    assert err.value.response["error"] == "unknown_method"
    with pytest.raises(SlackApiError) as err:
        await AsyncWebClient(base_url=slack_standin.url).auth_test()
    assert err.value.response["error"] == "not_authed"


async def test_form_encoded_arguments_are_accepted(slack_standin: SlackStandIn) -> None:
    client = client_for(slack_standin)
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "x"}}]
    resp = await client.api_call("chat.postMessage", data={"channel": "C1", "text": "t", "blocks": json.dumps(blocks)})
    assert resp["ok"]
    call = slack_standin.calls_to("chat.postMessage")[0]
    assert call.content_type == "application/x-www-form-urlencoded" and call.args["blocks"] == blocks


async def test_response_url_records_posts(slack_standin: SlackStandIn) -> None:
    url = slack_standin.response_url("cmd1")
    resp = await AsyncWebhookClient(url).send(text="on it", response_type="ephemeral")
    assert (resp.status_code, resp.body) == (200, "ok")
    assert slack_standin.responses("cmd1") == [{"text": "on it", "response_type": "ephemeral"}]
    assert slack_standin.calls[-1].method == "response_url"


async def test_wait_for_wakes_on_the_request(slack_standin: SlackStandIn) -> None:
    client = client_for(slack_standin)

    def two_posts(calls: Sequence[SlackCall]) -> bool:
        return sum(c.method == "chat.postMessage" for c in calls) >= 2

    waiter = asyncio.create_task(slack_standin.wait_for(two_posts, timeout=5.0))
    await asyncio.sleep(0)
    assert not waiter.done()
    started = time.monotonic()
    await client.chat_postMessage(channel="C1", text="a")
    await asyncio.sleep(0)
    assert not waiter.done()
    await client.chat_postMessage(channel="C1", text="b")
    calls = await waiter
    assert time.monotonic() - started < 4.0 and len(calls) == 2  # woken by the post, not by its 5 s timeout
    assert [c.args["text"] for c in await slack_standin.wait_for_calls("chat.postMessage", 2)] == ["a", "b"]

    with pytest.raises(AssertionError, match=r"(?s)within 0.05s; 2 calls.*chat.postMessage -> 200 ok"):
        await slack_standin.wait_for(lambda calls: len(calls) > 5, timeout=0.05)


async def test_wall_clock_ts_are_strictly_increasing() -> None:
    async with SlackStandIn(ts_base=None) as slack:
        client = client_for(slack)
        tss = [(await client.chat_postMessage(channel="C1", text=str(i)))["ts"] for i in range(5)]
    assert tss == sorted(tss, key=float) and len(set(tss)) == 5
    assert abs(float(tss[0]) - time.time()) < 60


# ---------------------------------------------------------------- signed requests


def _verifies(req: SlackRequest, secret: str = DEFAULT_SIGNING_SECRET) -> bool:
    return SignatureVerifier(secret).is_valid_request(req.body, req.headers)


def test_signature_agrees_with_slack_sdk() -> None:
    body = b"token=x&team_id=T1&text=hello+world"
    ours = signature(body, "s3cret", 1_700_000_000)
    assert ours == SignatureVerifier("s3cret").generate_signature(timestamp="1700000000", body=body)
    headers = sign(body, "s3cret")
    assert SignatureVerifier("s3cret").is_valid_request(body, headers)


def test_every_builder_verifies_and_variants_do_not() -> None:
    built = [
        slash_command(text="diagnose inv-42"),
        event_callback(reaction_added("U1", "eyes", "C1", "1700000000.000100")),
        url_verification("abc"),
        block_actions([button("ack", "inc-1")]),
    ]
    for req in built:
        assert _verifies(req)
        assert not _verifies(req, "another-secret")
        assert not _verifies(req.resigned(bad_signature=True))
        assert not _verifies(req.resigned(stale=True))
        assert _verifies(req.resigned(stale=True).resigned())
        assert not _verifies(req.resigned(missing="signature"))
        assert not _verifies(req.resigned(missing="timestamp"))
        assert not _verifies(req.resigned(missing="both"))
        retried = req.retried(2, "http_error")
        assert _verifies(retried) and retried.headers["X-Slack-Retry-Num"] == "2"
        assert retried.resigned(bad_signature=True).headers["X-Slack-Retry-Reason"] == "http_error"
    body, headers = built[0]
    assert isinstance(body, bytes) and headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert _verifies(slash_command(secret="other"), "other")


def test_payload_shapes() -> None:
    form = slash_command(text="status", user_id="U7", response_url="http://r").form()
    assert set(form) == {
        "token", "team_id", "team_domain", "channel_id", "channel_name", "user_id", "user_name",
        "command", "text", "api_app_id", "is_enterprise_install", "response_url", "trigger_id",
    }  # fmt: skip
    assert (form["command"], form["text"], form["user_id"], form["response_url"]) == (
        "/recon",
        "status",
        "U7",
        "http://r",
    )

    env = event_callback(reaction_added("U2", "eyes", "C1", "1.000100"), event_id="Ev1").json()
    for key in ("token", "team_id", "api_app_id", "event", "type", "event_id", "event_time", "authed_users"):
        assert key in env
    assert env["event_id"] == "Ev1" and env["authorizations"][0]["is_bot"] is True
    assert "item_user" not in env["event"] and env["event"]["item"] == {
        "type": "message",
        "channel": "C1",
        "ts": "1.000100",
    }
    assert reaction_removed("U2", "eyes", "C1", "1.0", item_user="U3")["item_user"] == "U3"
    assert event_callback({"type": "x"}).json()["event_id"] != event_callback({"type": "x"}).json()["event_id"]

    bot_msg = message("C1", "", bot_id="B0ALERTS", attachments=[{"title": "FIRING"}], ts="5.000001")
    assert "user" not in bot_msg and "subtype" not in bot_msg and bot_msg["bot_profile"]["id"] == "B0ALERTS"
    assert bot_msg["ts"] == bot_msg["event_ts"] == "5.000001"
    classic = message("C1", "x", bot_id="B1", subtype="bot_message", username="alertmanager")
    assert classic["username"] == "alertmanager" and "bot_profile" not in classic
    reply = message("C1", "hi", user="U1", thread_ts="5.000001")
    assert reply["thread_ts"] == "5.000001" and reply["user"] == "U1"

    payload = block_actions([button("ack", "inc-1")], user_id="U3", message_ts="9.000100").json()
    assert payload["type"] == "block_actions" and payload["user"]["id"] == "U3"
    assert payload["container"]["message_ts"] == payload["message"]["ts"] == "9.000100"
    assert payload["actions"][0]["action_id"] == "ack" and payload["actions"][0]["value"] == "inc-1"
    assert url_verification("abc").json()["challenge"] == "abc"


async def test_post_sends_the_bytes_and_headers() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200)

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        req = slash_command(text="x")
        await post(http, "http://bot/slack/events", req)
        await post(http, "http://bot/slack/events", *req)
    assert all(r.content == req.body for r in seen)
    assert all(SignatureVerifier(DEFAULT_SIGNING_SECRET).is_valid_request(r.content, dict(r.headers)) for r in seen)


# ---------------------------------------------------------------- with slack-bolt


async def test_bolt_app_against_the_standin(slack_standin: SlackStandIn) -> None:
    app = AsyncApp(
        client=AsyncWebClient(token="xoxb-test", base_url=slack_standin.url),
        signing_secret=DEFAULT_SIGNING_SECRET,
    )

    @app.command("/recon")
    async def recon(ack: AsyncAck, say: AsyncSay, respond: AsyncRespond, command: dict[str, Any]) -> None:
        await ack()
        posted = await say(text=f"diagnosing {command['text']}")
        await say(text="step 1", thread_ts=posted["ts"])
        await respond(text="done")

    req = slash_command(text="inv-42", response_url=slack_standin.response_url("r1"))
    resp = await app.async_dispatch(bolt_request(req))
    assert resp.status == 200
    await slack_standin.wait_for(lambda calls: any(c.method == "response_url" for c in calls))
    (parent,) = slack_standin.messages("C1")
    assert [m.text for m in slack_standin.thread("C1", parent.ts)] == ["diagnosing inv-42", "step 1"]
    assert slack_standin.responses("r1") == [{"text": "done"}]
    assert len(slack_standin.calls_to("auth.test")) == 1

    bad = await app.async_dispatch(bolt_request(req.resigned(bad_signature=True)))
    assert bad.status == 401
    stale = await app.async_dispatch(bolt_request(req.resigned(stale=True)))
    assert stale.status == 401


async def test_reply_to_a_seeded_alert(slack_standin: SlackStandIn) -> None:
    alert = slack_standin.add_message("C1", "", bot_id="B0ALERTS", attachments=[{"title": "[FIRING:1] BillingDrift"}])
    client = client_for(slack_standin)
    reply = await client.chat_postMessage(channel="C1", thread_ts=alert.ts, text="looking")
    assert reply["message"]["parent_user_id"] == "B0ALERTS"
    got = await client.conversations_replies(channel="C1", ts=alert.ts)
    assert [m.get("bot_id") for m in got["messages"]] == ["B0ALERTS", BOT_ID]
    assert float(alert.ts) < float(reply["ts"])
