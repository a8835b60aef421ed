"""Follow-up tickets end to end: ``/recon`` through the bot's HTTP face with
``RECON_TRACKER=github``, the GitHub stand-in as the tracker, the real store and worker.

The diagnosis's thread is complete before the ticket job runs; the job files one issue
per owning layer, posts each link in the thread once, records it on the timeline, and
the report page lists it. Retries, reruns and later diagnoses make no second issue."""

from __future__ import annotations

import json
import re

import asyncpg
import httpx
import pytest

from bot.diagnosis.model import Diagnosis
from bot.flows.followup_tickets import KIND, enqueue_tickets
from bot.report.data import load_report
from bot.report.render import render_html, render_markdown
from bot.store.db import connect_pool
from bot.store.jobs import JobQueue
from bot.store.store import Store
from tests.conftest import LoadedPlatform
from tests.e2e.conftest import thread_done
from tests.e2e.slackbot import InProcessBot, jobs_settled
from tests.standins.github import GitHubStandIn, github_standin
from tests.standins.slack import Message, SlackStandIn
from tests.standins.slack_requests import app_mention, event_callback, post, slash_command

__all__ = ["github_standin"]
CHANNEL = "C0INCIDENT"


@pytest.fixture
def bot_settings(github_standin: GitHubStandIn) -> dict[str, str]:
    return {"RECON_TRACKER": "github", "GITHUB_API_URL": github_standin.url, "GITHUB_TOKEN": github_standin.token,
            "GITHUB_REPOSITORY": "acme/billing"}


async def _diagnose(bot: InProcessBot, http: httpx.AsyncClient, slack: SlackStandIn, cid: str) -> None:
    r = await post(http, f"{bot.url}/slack/events", slash_command(text=cid, channel_id=CHANNEL, user_id="U0ONCALL"))
    assert r.status_code == 200


async def _latest(store_url: str) -> tuple[str, Diagnosis, int]:
    conn = await asyncpg.connect(store_url)
    try:
        row = await conn.fetchrow("select incident_id, run_id, result from diagnosis_runs where status = 'done' "
                                  "order by run_id desc limit 1")
    finally:
        await conn.close()
    result = row["result"] if isinstance(row["result"], dict) else json.loads(row["result"])
    return row["incident_id"], Diagnosis.model_validate(result), int(row["run_id"])


def _ticket_replies(thread: list[Message]) -> list[str]:
    return [m.text or "" for m in thread if (m.text or "").startswith("Follow-up for")]


async def _jobs(store_url: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(store_url)
    try:
        return list(await conn.fetch("select kind, status, attempts, dedup_key from jobs order by job_id"))
    finally:
        await conn.close()


async def test_recon_files_one_ticket_per_layer_linked_in_thread_timeline_and_report(
    bot: InProcessBot, http: httpx.AsyncClient, slack_standin: SlackStandIn, github_standin: GitHubStandIn,
    live: LoadedPlatform, store_url: str,
) -> None:
    cid = live.platform.disputed_correlation_id
    assert cid
    await _diagnose(bot, http, slack_standin, cid)
    jobs = await jobs_settled(store_url, 2)
    assert [(j["kind"], j["status"]) for j in jobs] == [("diagnose", "done"), (KIND, "done")]
    incident_id, d, _ = await _latest(store_url)
    layers = sorted({f.owning_layer for f in d.follow_ups})
    assert len(layers) >= 2
    issues = github_standin.issues_of("acme/billing")
    assert len(issues) == len(layers)
    assert sorted(re.search(r"\] (\w+):", i.title).group(1) for i in issues) == layers  # type: ignore[union-attr]
    assert all(f"recon:incident={incident_id}:layer=" in i.body for i in issues)
    # the thread: complete, then one short reply per ticket, linked
    assert thread_done(slack_standin, CHANNEL)
    parent = slack_standin.messages(CHANNEL)[0]
    replies = _ticket_replies(slack_standin.thread(CHANNEL, parent.ts))
    assert len(replies) == len(layers)
    for i in issues:
        assert any(f"<{github_standin.url}/acme/billing/issues/{i.number}|#{i.number}>" in r for r in replies)
    store = Store(await connect_pool(store_url, min_size=1, max_size=2))
    try:
        timeline = [e for e in await store.timeline(incident_id) if e.source == "tracker"]
        report = await load_report(store.pool, incident_id)
    finally:
        await store.close()
    assert sorted(e.details["layer"] for e in timeline if e.type == "ticket_created") == layers
    assert report is not None and sorted(t.layer for t in report.tickets) == layers
    html, md = render_html(report), render_markdown(report)
    for i in issues:
        assert f'href="{github_standin.url}/acme/billing/issues/{i.number}"' in html
        assert f"[#{i.number}]({github_standin.url}/acme/billing/issues/{i.number})" in md
    assert "Follow-up tickets" in html and "Follow-up tickets" in md


async def test_slack_retries_reruns_and_a_second_diagnosis_make_no_second_ticket(
    bot: InProcessBot, http: httpx.AsyncClient, slack_standin: SlackStandIn, github_standin: GitHubStandIn,
    live: LoadedPlatform, store_url: str,
) -> None:
    cid = live.platform.disputed_correlation_id
    assert cid
    req = event_callback(app_mention("U0ONCALL", f"<@U0RECON> {cid}", CHANNEL), event_id="Ev0TICKET")
    for n in (0, 1, 2):  # Slack delivers the same event again
        await post(http, f"{bot.url}/slack/events", req if n == 0 else req.retried(n, "http_timeout"))
    await jobs_settled(store_url, 2)
    n_issues = len(github_standin.issues_of("acme/billing"))
    incident_id, d, run_id = await _latest(store_url)
    parent = slack_standin.messages(CHANNEL)[0]
    n_replies = len(_ticket_replies(slack_standin.thread(CHANNEL, parent.ts)))
    assert n_issues == n_replies == len({f.owning_layer for f in d.follow_ups})

    # the same job again (a rerun after a crash): nothing new anywhere
    pool = await connect_pool(store_url, min_size=1, max_size=2)
    try:
        await enqueue_tickets(JobQueue(pool), incident_id, run_id, "diagnosis", channel=CHANNEL,
                              thread_ts=parent.ts)
    finally:
        await pool.close()
    await jobs_settled(store_url, 3)
    # a second diagnosis of the same incident, in a thread of its own: the same follow-ups
    await _diagnose(bot, http, slack_standin, cid)
    jobs = await jobs_settled(store_url, 5)
    assert [j["status"] for j in jobs] == ["done"] * 5
    assert len(github_standin.issues_of("acme/billing")) == n_issues
    assert all(i.comments == [] for i in github_standin.issues_of("acme/billing"))  # nothing changed
    assert len(_ticket_replies(slack_standin.thread(CHANNEL, parent.ts))) == n_replies  # not posted twice
    second = slack_standin.messages(CHANNEL)[-1]
    assert second.ts != parent.ts and len(_ticket_replies(slack_standin.thread(CHANNEL, second.ts))) == n_issues
    assert (await _latest(store_url))[0] == incident_id


async def test_a_changed_follow_up_is_commented_on_its_ticket(
    bot: InProcessBot, http: httpx.AsyncClient, slack_standin: SlackStandIn, github_standin: GitHubStandIn,
    live: LoadedPlatform, store_url: str,
) -> None:
    """A later diagnosis whose follow-up for a layer differs (one more app instance) is
    one comment on that layer's ticket, not a new ticket."""
    cid = live.platform.disputed_correlation_id
    assert cid
    await _diagnose(bot, http, slack_standin, cid)
    await jobs_settled(store_url, 2)
    incident_id, d, _ = await _latest(store_url)
    changed = d.model_copy(deep=True)
    changed.follow_ups[0].app_instance_ids.append("ai-new-instance")
    layer = changed.follow_ups[0].owning_layer
    store = Store(await connect_pool(store_url, min_size=1, max_size=2))
    try:
        run2 = await store.start_run(incident_id, d.subject, d.window)  # type: ignore[arg-type]
        await store.finish_run(run2, changed, complete=True, scope=changed.scope)
        await enqueue_tickets(JobQueue(store.pool), incident_id, run2, "diagnosis")
        await jobs_settled(store_url, 3)
        timeline = [e for e in await store.timeline(incident_id) if e.type == "ticket_commented"]
    finally:
        await store.close()
    issues = github_standin.issues_of("acme/billing")
    assert len(issues) == len({f.owning_layer for f in d.follow_ups})
    commented = [i for i in issues if i.comments]
    assert len(commented) == 1 and f"] {layer}:" in commented[0].title
    assert len(commented[0].comments) == 1 and "ai-new-instance" in commented[0].comments[0]["body"]
    assert [e.details["layer"] for e in timeline] == [layer]


async def test_tracker_down_is_said_once_and_the_diagnosis_thread_is_complete(
    bot: InProcessBot, http: httpx.AsyncClient, slack_standin: SlackStandIn, github_standin: GitHubStandIn,
    live: LoadedPlatform, store_url: str,
) -> None:
    # down for every call; Retry-After 0 so the job's five attempts follow at once
    github_standin.script(503, {"message": "Service Unavailable"}, headers={"Retry-After": "0"}, times=10_000)
    cid = live.platform.disputed_correlation_id
    assert cid
    await _diagnose(bot, http, slack_standin, cid)
    jobs = await jobs_settled(store_url, 2, timeout=60)
    assert [(j["kind"], j["status"]) for j in jobs] == [("diagnose", "done"), (KIND, "failed")]
    assert jobs[1]["attempts"] == 5
    assert thread_done(slack_standin, CHANNEL)
    parent = slack_standin.messages(CHANNEL)[0]
    thread = slack_standin.thread(CHANNEL, parent.ts)
    down = [m for m in thread if "No follow-up ticket was filed" in (m.text or "")]
    assert len(down) == 1 and "github did not answer after 5 attempts" in (down[0].text or "")
    assert github_standin.issues_of("acme/billing") == []
    assert (thread[-1].text or "") == (down[0].text or "")  # after the diagnosis's own replies
