"""Freeze and unfreeze by approvers' reactions and buttons, through signed Slack events:
approvers and user-group members count, nobody else does; quorum, retraction, expiry,
duplicates and races decide once; the freeze API lists what was frozen."""

from __future__ import annotations

import asyncio
import json
from functools import partial

import asyncpg
import httpx

from tests.conftest import LoadedPlatform
from tests.e2e.conftest import live_env
from tests.e2e.slackbot import InProcessBot, bot_in_process
from tests.standins.slack import Message, SlackStandIn
from tests.standins.slack_requests import (
    block_actions,
    button,
    event_callback,
    post,
    reaction_added,
    reaction_removed,
    slash_command,
)

CHANNEL = "C0FREEZE"
API_TOKEN = "api-token-for-tests"
APPROVER, SECOND, MEMBER, STRANGER = "U0APPROVER1", "U0APPROVER2", "U0GROUPMEMBER", "U0RANDOM"


# env_for(live, store_url, slack, **extra): this file's bots
env_for = partial(live_env, RECON_APPROVERS=f"{APPROVER},{SECOND},S0APPROVERS", RECON_API_TOKEN=API_TOKEN)


async def prompt_of(bot: InProcessBot, http: httpx.AsyncClient, slack: SlackStandIn, live: LoadedPlatform,
                    channel: str = CHANNEL) -> Message:
    """Run /recon on the disputed call (several instances: a freeze is recommended) and
    return the freeze prompt posted in its thread."""
    slack.usergroups["S0APPROVERS"] = [MEMBER]
    cid = live.platform.disputed_correlation_id
    assert cid
    await post(http, f"{bot.url}/slack/events", slash_command(text=cid, channel_id=channel))

    def prompt(_: object) -> Message | None:
        for m in slack.messages(channel):
            for r in slack.thread(channel, m.ts)[1:]:
                if "Freeze manual customer-facing adjustments?" in json.dumps(r.blocks):
                    return r
        return None

    await slack.wait_for(lambda c: prompt(c) is not None, timeout=30)
    await slack.wait_for_calls("reactions.add", 2)  # the bot has recorded the prompt's message by then
    found = prompt(None)
    assert found is not None
    return found


async def react(http: httpx.AsyncClient, bot: InProcessBot, user: str, emoji: str, ts: str, *,
                removed: bool = False, event_id: str | None = None) -> None:
    ev = (reaction_removed if removed else reaction_added)(user, emoji, CHANNEL, ts)
    r = await post(http, f"{bot.url}/slack/events", event_callback(ev, event_id=event_id))
    assert r.status_code == 200


def prompt_state(slack: SlackStandIn, ts: str) -> str:
    m = slack.message(CHANNEL, ts)
    assert m is not None
    return json.dumps(m.blocks)


async def audit(store_url: str) -> list[tuple[str, str | None]]:
    conn = await asyncpg.connect(store_url)
    try:
        return [(r["type"], r["user_id"]) for r in await conn.fetch(
            "select type, user_id from approval_events order by event_id")]
    finally:
        await conn.close()


async def test_only_approvers_count_and_an_approved_freeze_is_listed_by_the_api(
    live: LoadedPlatform, store_url: str, slack_standin: SlackStandIn, http: httpx.AsyncClient,
) -> None:
    async with bot_in_process(env_for(live, store_url, slack_standin)) as bot:
        prompt = await prompt_of(bot, http, slack_standin, live)
        blob = json.dumps(prompt.blocks)
        assert f"<@{APPROVER}>" in blob and "<!subteam^S0APPROVERS>" in blob and "white_check_mark" in blob
        assert {c.args.get("name") for c in slack_standin.calls_to("reactions.add")} == {"white_check_mark", "x"}
        # a stranger's reaction changes nothing and is answered, to them only, in the thread
        await react(http, bot, STRANGER, "white_check_mark", prompt.ts)
        await slack_standin.wait_for(lambda _: any(
            "only the approvers named on the prompt decide" in e.text and e.user == STRANGER
            for e in slack_standin.ephemerals))
        assert "open until" in prompt_state(slack_standin, prompt.ts)
        # an approver's reaction decides (quorum 1); a repeat of the same event counts once
        await react(http, bot, APPROVER, "white_check_mark", prompt.ts, event_id="Ev0VOTE1")
        await react(http, bot, APPROVER, "white_check_mark", prompt.ts, event_id="Ev0VOTE1")
        await slack_standin.wait_for(lambda _: "Approved" in prompt_state(slack_standin, prompt.ts))
        # further reactions change nothing
        await react(http, bot, SECOND, "x", prompt.ts)
        parent = slack_standin.messages(CHANNEL)[0]
        await slack_standin.wait_for(lambda _: "adjustments frozen" in json.dumps(
            slack_standin.message(CHANNEL, parent.ts).blocks))  # type: ignore[union-attr]
        r = await http.get(f"{bot.url}/api/freezes", headers={"Authorization": f"Bearer {API_TOKEN}"})
        assert r.status_code == 200
        freezes = r.json()["freezes"]
        assert len(freezes) == 1 and freezes[0]["approved_by"] == [APPROVER]
        org = freezes[0]["scope"]["app_instances"][0][0]
        assert len(freezes[0]["scope"]["app_instances"]) >= 2
        r = await http.get(f"{bot.url}/api/freezes", params={"org_id": org},
                           headers={"Authorization": f"Bearer {API_TOKEN}"})
        assert r.json()["count"] == 1
        r = await http.get(f"{bot.url}/api/freezes", params={"org_id": "org-elsewhere"},
                           headers={"Authorization": f"Bearer {API_TOKEN}"})
        assert r.json()["count"] == 0
        assert (await http.get(f"{bot.url}/api/freezes")).status_code == 401
        assert (await http.get(f"{bot.url}/api/freezes", params={"org_id": 'x"; drop'},
                               headers={"Authorization": f"Bearer {API_TOKEN}"})).status_code == 400
        # /recon freezes lists it
        r = await post(http, f"{bot.url}/slack/events", slash_command(text="freezes", channel_id=CHANNEL))
        assert "1 active freeze" in r.text
    events = await audit(store_url)
    assert ("refusal", STRANGER) in events and events.count(("vote", APPROVER)) == 1
    assert ("decision", None) in events and ("ignored", SECOND) in events


async def test_quorum_retraction_group_member_and_buttons(
    live: LoadedPlatform, store_url: str, slack_standin: SlackStandIn, http: httpx.AsyncClient,
) -> None:
    async with bot_in_process(env_for(live, store_url, slack_standin, RECON_APPROVAL_QUORUM="2")) as bot:
        prompt = await prompt_of(bot, http, slack_standin, live)
        await react(http, bot, APPROVER, "white_check_mark", prompt.ts)
        await slack_standin.wait_for(lambda _: "approve 1/2" in prompt_state(slack_standin, prompt.ts))
        await react(http, bot, APPROVER, "white_check_mark", prompt.ts, removed=True)
        await slack_standin.wait_for(lambda _: "approve 0/2" in prompt_state(slack_standin, prompt.ts))
        # a member of the approvers' user group counts; so does a button press
        body = block_actions([button("recon_approve", str(_prompt_id(prompt)))], user_id=MEMBER,
                             channel_id=CHANNEL, message_ts=prompt.ts)
        assert (await post(http, f"{bot.url}/slack/events", body)).status_code == 200
        await slack_standin.wait_for(lambda _: "approve 1/2" in prompt_state(slack_standin, prompt.ts))
        await react(http, bot, APPROVER, "white_check_mark", prompt.ts)
        await slack_standin.wait_for(lambda _: "Approved" in prompt_state(slack_standin, prompt.ts))
    events = await audit(store_url)
    kinds = [t for t, _ in events if t != "prompt"]
    assert kinds == ["vote", "retract", "vote", "vote", "decision"]


async def test_two_approvers_racing_decide_once(
    live: LoadedPlatform, store_url: str, slack_standin: SlackStandIn, http: httpx.AsyncClient,
) -> None:
    async with bot_in_process(env_for(live, store_url, slack_standin)) as bot:
        prompt = await prompt_of(bot, http, slack_standin, live)
        await asyncio.gather(react(http, bot, APPROVER, "white_check_mark", prompt.ts),
                             react(http, bot, SECOND, "x", prompt.ts))
        await slack_standin.wait_for(lambda _: "Approved" in prompt_state(slack_standin, prompt.ts)
                                     or "Declined" in prompt_state(slack_standin, prompt.ts))
    conn = await asyncpg.connect(store_url)
    try:
        decisions = await conn.fetchval("select count(*) from approval_events where type = 'decision'")
        freezes = await conn.fetchval("select count(*) from freezes")
        status = await conn.fetchval("select status from approval_prompts where kind = 'freeze'")
    finally:
        await conn.close()
    assert decisions == 1 and freezes == (1 if status == "approved" else 0)


async def test_an_expired_prompt_says_so_and_ignores_votes(
    live: LoadedPlatform, store_url: str, slack_standin: SlackStandIn, http: httpx.AsyncClient,
) -> None:
    async with bot_in_process(env_for(live, store_url, slack_standin, RECON_APPROVAL_EXPIRY_H="0.000001")) as bot:
        prompt = await prompt_of(bot, http, slack_standin, live)
        await react(http, bot, APPROVER, "white_check_mark", prompt.ts)
        await slack_standin.wait_for(lambda _: "Expired" in prompt_state(slack_standin, prompt.ts))
    conn = await asyncpg.connect(store_url)
    try:
        assert await conn.fetchval("select count(*) from freezes") == 0
        assert await conn.fetchval("select status from approval_prompts where kind = 'freeze'") == "expired"
    finally:
        await conn.close()


async def test_unfreeze_by_hand(
    live: LoadedPlatform, store_url: str, slack_standin: SlackStandIn, http: httpx.AsyncClient,
) -> None:
    async with bot_in_process(env_for(live, store_url, slack_standin)) as bot:
        prompt = await prompt_of(bot, http, slack_standin, live)
        await react(http, bot, APPROVER, "white_check_mark", prompt.ts)
        await slack_standin.wait_for(lambda _: "Approved" in prompt_state(slack_standin, prompt.ts))
        conn = await asyncpg.connect(store_url)
        try:
            incident = await conn.fetchval("select incident_id from freezes")
        finally:
            await conn.close()
        r = await post(http, f"{bot.url}/slack/events",
                       slash_command(text=f"unfreeze {incident}", channel_id=CHANNEL))
        assert "Asking the approvers" in r.text

        def unfreeze_prompt(_: object) -> Message | None:
            for m in slack_standin.thread(CHANNEL, prompt.thread_ts or ""):
                if "Lift the freeze" in json.dumps(m.blocks):
                    return m
            return None

        await slack_standin.wait_for(lambda c: unfreeze_prompt(c) is not None)
        # the bot has recorded this prompt's message too (after the freeze and corrections prompts')
        await slack_standin.wait_for_calls("reactions.add", 6)
        lift = unfreeze_prompt(None)
        assert lift is not None
        await react(http, bot, SECOND, "white_check_mark", lift.ts)
        await slack_standin.wait_for(lambda _: "Approved" in prompt_state(slack_standin, lift.ts))
        r = await http.get(f"{bot.url}/api/freezes", headers={"Authorization": f"Bearer {API_TOKEN}"})
        assert r.json()["count"] == 0


def _prompt_id(m: Message) -> int:
    for b in m.blocks or []:
        if b.get("type") == "actions":
            return int(b["elements"][0]["value"])
    raise AssertionError("no buttons on the prompt")


async def test_pin_reaction_adds_a_thread_message_to_the_timeline_once(
    live: LoadedPlatform, store_url: str, slack_standin: SlackStandIn, http: httpx.AsyncClient,
) -> None:
    async with bot_in_process(env_for(live, store_url, slack_standin)) as bot:
        prompt = await prompt_of(bot, http, slack_standin, live)
        parent_ts = prompt.thread_ts or ""
        note = slack_standin.add_message(CHANNEL, "customer confirmed the double charge on invoice 4411",
                                         user="U0ONCALL", thread_ts=parent_ts)
        elsewhere = slack_standin.add_message(CHANNEL, "lunch?", user="U0ONCALL")
        for ts in (note.ts, note.ts, elsewhere.ts):  # the second pin of the same message adds nothing
            r = await post(http, f"{bot.url}/slack/events",
                           event_callback(reaction_added("U0ONCALL", "pushpin", CHANNEL, ts)))
            assert r.status_code == 200
        # the bot marks what it added with a bookmark; the lunch question is not in a thread of an incident
        await slack_standin.wait_for(lambda calls: any(
            c.method == "reactions.add" and c.args.get("name") == "bookmark" for c in calls))
        await slack_standin.wait_for_calls("conversations.replies", 3)
        conn = await asyncpg.connect(store_url)
        try:
            rows = await conn.fetch("select description, actor, correlation_id, details from timeline_events "
                                    "where type = 'pinned'")
        finally:
            await conn.close()
    assert len(rows) == 1
    assert rows[0]["description"].startswith("customer confirmed") and rows[0]["actor"] == "U0ONCALL"
    assert rows[0]["correlation_id"] == live.platform.disputed_correlation_id
