"""Approvals that hold under Slack's failures and races: a vote whose approver status
cannot be checked is retried (and the thread says so once), a non-approver is answered
once and only to them, and a vote on a prompt whose ts is not stored yet counts."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from bot.errors import SourceUnavailable
from bot.flows.approval_intake import VOTE_JOB, run_vote_job
from bot.flows.approvals import ApprovalFlow
from bot.settings import Settings
from bot.slack.approvers import Approvers
from bot.slack.client import web_client
from bot.store.approvals import ApprovalStore, Prompt
from bot.store.jobs import JobQueue
from bot.store.store import Store
from handlers.approvals import reaction_added as reaction_handler
from handlers.approvals import reaction_removed as reaction_removed_handler
from tests.conftest import LoadedPlatform
from tests.e2e.slackbot import bot_in_process
from tests.e2e.test_approvals import (
    APPROVER,
    CHANNEL,
    MEMBER,
    STRANGER,
    audit,
    env_for,
    prompt_of,
    prompt_state,
    react,
)
from tests.standins.slack import SlackStandIn
from tests.standins.slack_requests import reaction_added, reaction_removed


async def test_a_group_that_cannot_be_read_is_not_answered_from_its_stale_list(slack_standin: SlackStandIn) -> None:
    settings = Settings(SLACK_BOT_TOKEN="xoxb-test", SLACK_API_URL=slack_standin.url.rstrip("/"))  # type: ignore[call-arg]
    approvers = Approvers(web_client(settings), "S0GROUP", refresh_s=0.000001)
    slack_standin.usergroups["S0GROUP"] = [MEMBER]
    assert await approvers.is_approver(MEMBER)
    slack_standin.usergroups["S0GROUP"] = []  # MEMBER leaves the group; Slack then fails
    slack_standin.error("usergroups.users.list", "internal_error")
    with pytest.raises(SourceUnavailable):
        await approvers.is_approver(MEMBER)  # not True from the stale list
    slack_standin.drop_connection("usergroups.users.list", times=None)  # the network fails: the same
    with pytest.raises(SourceUnavailable):
        await approvers.is_approver(STRANGER)
    slack_standin.reset()
    assert not await approvers.is_approver(MEMBER)  # read again at once when Slack is back
    # a group Slack says does not exist counts nobody (a setting to fix), it holds nothing back
    bad = Approvers(web_client(settings), "S0MISSING")
    assert not await bad.is_approver(MEMBER)


async def test_a_vote_that_cannot_be_checked_is_retried_and_the_thread_says_so_once(
    live: LoadedPlatform, store_url: str, slack_standin: SlackStandIn, http: httpx.AsyncClient,
) -> None:
    async with bot_in_process(env_for(live, store_url, slack_standin)) as bot:
        prompt = await prompt_of(bot, http, slack_standin, live)
        # the group cannot be read for the reaction and the first retry; then it can
        slack_standin.error("usergroups.users.list", "internal_error", times=2)
        await react(http, bot, MEMBER, "white_check_mark", prompt.ts)
        await slack_standin.wait_for(lambda _: "Approved" in prompt_state(slack_standin, prompt.ts), timeout=30)
        notes = [m for m in slack_standin.thread(CHANNEL, prompt.thread_ts or "")
                 if "could not be counted yet" in (m.text or "")]
    assert len(notes) == 1 and f"<@{MEMBER}>" in notes[0].text
    assert len(slack_standin.calls_to("usergroups.users.list")) == 3
    events = await audit(store_url)
    assert events.count(("vote", MEMBER)) == 1 and ("decision", None) in events


def flow_on(store: Store, slack: SlackStandIn) -> ApprovalFlow:
    settings = Settings(SLACK_BOT_TOKEN="xoxb-test", SLACK_API_URL=slack.url.rstrip("/"),  # type: ignore[call-arg]
                        RECON_APPROVERS=f"{APPROVER},S0APPROVERS")
    client = web_client(settings)
    return ApprovalFlow(settings=settings, store=store, approvals=ApprovalStore(store.pool),
                        queue=JobQueue(store.pool), slack=client, approvers=Approvers(client, settings.approvers))


async def open_prompt(flow: ApprovalFlow, slack: SlackStandIn) -> Prompt:
    inc, _ = await flow.store.get_or_create_incident(title="t", origin="slack", correlation_id="corr-approvals")
    parent = slack.add_message(CHANNEL, "diagnosis", user="U0ONCALL")
    p, _ = await flow.approvals.create_prompt(
        incident_id=inc.incident_id, kind="freeze", channel=CHANNEL, thread_ts=parent.ts,
        scope={"orgs": ["org-1"]}, reason="test", quorum=1, expires_in_s=3600)
    return p


async def test_a_non_approver_is_answered_once_only_to_them_without_pinging_approvers(
    store: Store, slack_standin: SlackStandIn,
) -> None:
    slack_standin.usergroups["S0APPROVERS"] = [MEMBER]
    flow = flow_on(store, slack_standin)
    await flow._post_prompt(await open_prompt(flow, slack_standin))
    p = await flow.approvals.open_prompt((await store.pool.fetchval("select incident_id from incidents")), "freeze")
    assert p is not None and p.message_ts
    added, removed = reaction_handler(flow), reaction_removed_handler(flow)
    before = len(slack_standin.thread(CHANNEL, p.thread_ts or ""))
    for n, (emoji, gone) in enumerate([("white_check_mark", False), ("white_check_mark", True),
                                        ("white_check_mark", False), ("x", False)]):
        body = {"event_id": f"Ev0TOGGLE{n}"}
        if gone:
            await removed(body, reaction_removed(STRANGER, emoji, CHANNEL, p.message_ts))
        else:
            await added(body, reaction_added(STRANGER, emoji, CHANNEL, p.message_ts))
    answers = [e for e in slack_standin.ephemerals if e.user == STRANGER]
    assert len(answers) == 1
    assert answers[0].thread_ts == p.thread_ts and "changes nothing" in answers[0].text
    assert "<@" not in answers[0].text and "subteam" not in answers[0].text
    assert slack_standin.thread(CHANNEL, p.thread_ts or "")[before:] == []  # nothing in the thread, no ping
    assert [t for t, u in await audit_of(store) if u == STRANGER] == ["refusal"] * 3  # each one audited
    # where Slack refuses the ephemeral, one reply names only them
    slack_standin.error("chat.postEphemeral", "user_not_in_channel")
    await added({"event_id": "Ev0OTHER"}, reaction_added("U0OTHER", "white_check_mark", CHANNEL, p.message_ts))
    new = slack_standin.thread(CHANNEL, p.thread_ts or "")[before:]
    assert len(new) == 1 and "<@U0OTHER>" in new[0].text and "<@U0APPROVER1>" not in new[0].text
    assert "subteam" not in new[0].text


async def test_a_vote_before_the_prompt_ts_is_stored_counts(store: Store, slack_standin: SlackStandIn) -> None:
    flow = flow_on(store, slack_standin)
    queue = flow.queue
    p = await open_prompt(flow, slack_standin)
    real_set_message = flow.approvals.set_message
    handle = reaction_handler(flow)

    async def reaction_first(prompt_id: int, ts: str) -> None:
        # the approver reacts after Slack answered with the prompt's ts, before the store has it
        ev: dict[str, Any] = reaction_added(APPROVER, "white_check_mark", CHANNEL, ts)
        await handle({"event_id": "Ev0EARLY"}, ev)
        await real_set_message(prompt_id, ts)

    flow.approvals.set_message = reaction_first  # type: ignore[method-assign]
    await flow._post_prompt(p)
    job = await queue.claim("test", 30, [VOTE_JOB])
    assert job is not None and job.payload["user"] == APPROVER
    result = await run_vote_job(flow, job)
    assert result["outcome"] == "counted"
    decided = await flow.approvals.get(p.prompt_id)
    assert decided is not None and decided.status == "approved" and decided.decided_by == [APPROVER]
    # a replay of the same event (Slack's retry reaching the prompt directly) counts nothing more
    await handle({"event_id": "Ev0EARLY"}, reaction_added(APPROVER, "white_check_mark", CHANNEL,
                                                          decided.message_ts or ""))
    assert [t for t, _ in await audit_of(store)].count("vote") == 1
    shown = slack_standin.message(CHANNEL, decided.message_ts or "")
    assert shown is not None and "Approved" in json.dumps(shown.blocks)


async def audit_of(store: Store) -> list[tuple[str, str | None]]:
    return [(r["type"], r["user_id"]) for r in await store.pool.fetch(
        "select type, user_id from approval_events order by event_id")]
