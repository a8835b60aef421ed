"""The Slack bot through its real HTTP face: signed requests over loopback, a Slack
Web API stand-in that records every call, the real store."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from tests.conftest import LoadedPlatform
from tests.e2e.conftest import thread_done
from tests.e2e.slackbot import STEPS, InProcessBot, jobs_settled, store_rows
from tests.standins.slack import SlackStandIn
from tests.standins.slack_requests import (
    app_mention,
    event_callback,
    post,
    slash_command,
    url_verification,
)

CHANNEL = "C0INCIDENT"


def answer(r: httpx.Response) -> str:
    """What the person who typed the command sees (bolt answers an ack with text as text/plain)."""
    if r.headers.get("content-type", "").startswith("application/json"):
        return str(r.json().get("text", ""))
    return r.text


async def test_url_verification(bot: InProcessBot, http: httpx.AsyncClient) -> None:
    r = await post(http, f"{bot.url}/slack/events", url_verification("chal-123"))
    assert r.status_code == 200 and "chal-123" in r.text


async def test_signatures_and_malformed_bodies(bot: InProcessBot, http: httpx.AsyncClient) -> None:
    req = slash_command(text="corr-1", channel_id=CHANNEL)
    for bad in (req.resigned(bad_signature=True), req.resigned(stale=True), req.resigned(missing="both")):
        r = await post(http, f"{bot.url}/slack/events", bad)
        assert r.status_code == 401 and r.json() == {"error": "invalid request"}
    garbage = url_verification("x")
    broken = garbage.__class__(body=b'{"type": "event_callback", ', headers={}, secret=garbage.secret)
    from tests.standins.slack_requests import sign

    r = await post(http, f"{bot.url}/slack/events", broken.body,
                   {**sign(broken.body, broken.secret), "Content-Type": "application/json"})
    assert r.status_code == 400 and "malformed" in r.json()["error"]


async def test_help_and_crafted_text_get_usage(bot: InProcessBot, http: httpx.AsyncClient,
                                               slack_standin: SlackStandIn) -> None:
    r = await post(http, f"{bot.url}/slack/events", slash_command(text="help", channel_id=CHANNEL))
    assert r.status_code == 200 and "/recon <correlation_id>" in answer(r)
    r = await post(http, f"{bot.url}/slack/events",
                   slash_command(text='x"} |= "" | line_format "{{.password}}', channel_id=CHANNEL))
    assert r.status_code == 200
    assert "too many words" in answer(r) and "Usage" in answer(r)
    r = await post(http, f"{bot.url}/slack/events", slash_command(text='x"}|line_format', channel_id=CHANNEL))
    assert "ids never contain" in answer(r) and "Usage" in answer(r)
    assert slack_standin.calls_to("chat.postMessage") == []  # nothing started


async def test_recon_posts_a_thread_step_by_step_and_records_it(
    bot: InProcessBot, http: httpx.AsyncClient, slack_standin: SlackStandIn, live: LoadedPlatform, store_url: str
) -> None:
    cid = live.platform.disputed_correlation_id
    assert cid
    r = await post(http, f"{bot.url}/slack/events", slash_command(text=cid, channel_id=CHANNEL, user_id="U0ONCALL"))
    assert r.status_code == 200 and "Diagnosing" in answer(r)
    await slack_standin.wait_for(lambda _: thread_done(slack_standin, CHANNEL), timeout=30)
    await jobs_settled(store_url, 1)  # the verdict comes first: the last replies may still be on their way
    parent = slack_standin.messages(CHANNEL)[0]
    thread = slack_standin.thread(CHANNEL, parent.ts)
    titles = ["Logs by correlation id", "Billing rows by correlation id", "Trace stages", "App-instance pivot",
              "Attribution", "Reconciliation checklist"]
    for i, (reply, title) in enumerate(zip(thread[1:1 + STEPS], titles, strict=True), start=1):
        assert reply.thread_ts == parent.ts
        assert f"{i}/6 {title}" in json.dumps(reply.blocks)
        assert reply.text  # plain-text fallback
        assert len(reply.blocks) <= 50
    # the parent was posted "running" and updated with the verdict
    assert "running" in json.dumps(parent.history[0]) and "Freeze" in json.dumps(parent.blocks)
    posts = slack_standin.calls_to("chat.postMessage")
    assert [c.args.get("thread_ts") for c in posts][:1 + STEPS] == [None] + [parent.ts] * STEPS
    assert (thread[1 + STEPS].text or "").startswith("Follow-ups")  # who must fix what, and proposed corrections
    conn = await asyncpg.connect(store_url)
    try:
        inc = await conn.fetchrow("select incident_id, slack_channel, slack_thread_ts, origin from incidents")
        job = await conn.fetchrow("select status, attempts from jobs")
        n_posts = await conn.fetchval("select count(*) from slack_posts where state = 'posted'")
        run = await conn.fetchrow("select status, job_id from diagnosis_runs")
    finally:
        await conn.close()
    assert (inc["slack_channel"], inc["slack_thread_ts"], inc["origin"]) == (CHANNEL, parent.ts, "slack")
    # the parent links to the incident's report with a signed token that opens it
    import re

    link = re.search(r"<(http://[^|>]+/incidents/INC-[^|>]+)\|", json.dumps(parent.blocks))
    assert link, parent.blocks
    page = await http.get(link.group(1).replace("\\u0026", "&"))
    assert page.status_code == 200 and inc["incident_id"] in page.text
    assert (await http.get(link.group(1).split("?")[0])).status_code == 401
    assert (job["status"], job["attempts"]) == ("done", 1)
    # the parent, the steps, the follow-ups, the freeze prompt, the corrections prompt
    assert n_posts == 1 + STEPS + 3 and run["status"] == "done" and run["job_id"] is not None


async def test_the_verdict_is_shown_at_once_and_a_reply_that_fails_still_fails_the_job(
    bot: InProcessBot, http: httpx.AsyncClient, slack_standin: SlackStandIn, live: LoadedPlatform, store_url: str
) -> None:
    """The parent shows the verdict as soon as the diagnosis is assembled, not after the
    replies; a reply Slack refuses still fails the attempt, and the retry posts what is
    missing, once each and in step order, and shows the verdict again."""
    cid = live.platform.disputed_correlation_id
    assert cid

    def pivot_reply(args: Mapping[str, Any]) -> bool:
        return bool((args.get("metadata") or {}).get("event_payload", {}).get("key") == "step:pivot")

    slack_standin.error("chat.postMessage", "internal_error", where=pivot_reply)
    await post(http, f"{bot.url}/slack/events", slash_command(text=cid, channel_id=CHANNEL))
    jobs = await jobs_settled(store_url, 1, timeout=60)
    last_error = (await store_rows(store_url, "select last_error from jobs"))[0]["last_error"]
    runs = await store_rows(store_url, "select status from diagnosis_runs order by run_id")
    assert [(j["status"], j["attempts"]) for j in jobs] == [("done", 2)]
    assert "internal_error" in str(last_error)
    refused = [c for c in slack_standin.calls_to("chat.postMessage") if not (c.response or {}).get("ok")]
    assert [pivot_reply(c.args) for c in refused] == [True]
    # each attempt showed the verdict; the parent ends with it
    updates = slack_standin.calls_to("chat.update")
    assert len(updates) == 2 and all("Drift found" in json.dumps(u.args.get("blocks")) for u in updates)
    parent = slack_standin.messages(CHANNEL)[0]
    assert "Drift found" in json.dumps(parent.blocks)
    # the replies: every step once, in step order, then the follow-ups
    thread = slack_standin.thread(CHANNEL, parent.ts)
    assert [json.dumps(m.blocks).split("/6 ")[1][:10] for m in thread[1:1 + STEPS]] == [
        "Logs by co", "Billing ro", "Trace stag", "App-instan", "Attributio", "Reconcilia"]
    assert (thread[1 + STEPS].text or "").startswith("Follow-ups")  # then the prompts
    keys = [tuple((c.args.get("metadata") or {}).get("event_payload", {}).get(k) for k in ("ns", "key"))
            for c in slack_standin.calls_to("chat.postMessage") if (c.response or {}).get("ok")]
    assert len(keys) == len(set(keys)) == len(thread)
    assert runs and runs[-1]["status"] == "done"


async def test_a_parent_slack_refuses_stops_that_attempt_and_the_retry_posts_the_thread_once(
    bot: InProcessBot, http: httpx.AsyncClient, slack_standin: SlackStandIn, live: LoadedPlatform, store_url: str
) -> None:
    """The diagnosis starts while its parent message is posted; when Slack refuses the
    parent, that attempt's diagnosis is stopped and marked failed (no reply, no verdict
    without a parent), and the retry posts one parent, its replies and its verdict."""
    cid = live.platform.disputed_correlation_id
    assert cid

    def parent_post(args: Mapping[str, Any]) -> bool:
        return not args.get("thread_ts")

    slack_standin.error("chat.postMessage", "internal_error", where=parent_post)
    await post(http, f"{bot.url}/slack/events", slash_command(text=cid, channel_id=CHANNEL))
    jobs = await jobs_settled(store_url, 1, timeout=60)
    runs = await store_rows(store_url, "select status from diagnosis_runs order by run_id")
    assert [(j["status"], j["attempts"]) for j in jobs] == [("done", 2)]
    # the first attempt's run, if it got as far as being recorded, was stopped and marked failed
    assert [r["status"] for r in runs] in (["failed", "done"], ["done"])
    parents = [m for m in slack_standin.messages(CHANNEL) if not m.is_reply]
    assert len(parents) == 1 and "Drift found" in json.dumps(parents[0].blocks)
    assert len(slack_standin.calls_to("chat.update")) == 1
    thread = slack_standin.thread(CHANNEL, parents[0].ts)
    assert len(thread) >= 1 + STEPS and all(m.thread_ts == parents[0].ts for m in thread[1:])


async def test_a_new_incident_is_opened_once_and_its_timeline_says_so(
    bot: InProcessBot, http: httpx.AsyncClient, slack_standin: SlackStandIn, live: LoadedPlatform, store_url: str
) -> None:
    """The job opens the incident and hands it to the run: the run must not find it
    "already open" (it used to open it a second time and say so)."""
    cid = live.platform.disputed_correlation_id
    r = await post(http, f"{bot.url}/slack/events", slash_command(text=cid, channel_id=CHANNEL, user_id="U0ONCALL"))
    assert r.status_code == 200
    await jobs_settled(store_url, 1)
    conn = await asyncpg.connect(store_url)
    try:
        incidents = await conn.fetchval("select count(*) from incidents")
        started = await conn.fetch("select description from timeline_events where type = 'diagnosis_started'")
    finally:
        await conn.close()
    assert incidents == 1 and len(started) == 1
    assert started[0]["description"] == f"diagnosis of correlation_id {cid} requested (incident opened)"


async def test_second_recon_for_a_running_subject_points_to_its_thread(
    bot: InProcessBot, http: httpx.AsyncClient, slack_standin: SlackStandIn, live: LoadedPlatform
) -> None:
    cid = live.platform.disputed_correlation_id
    assert cid
    slack_standin.delay_s = 0.2  # every post takes a while: the first job is still running
    r1 = await post(http, f"{bot.url}/slack/events", slash_command(text=cid, channel_id=CHANNEL))
    await slack_standin.wait_for(lambda _: len(slack_standin.messages(CHANNEL)) == 1, timeout=20)
    r2 = await post(http, f"{bot.url}/slack/events", slash_command(text=cid, channel_id=CHANNEL))
    assert "Diagnosing" in answer(r1)
    assert "already running" in answer(r2)
    assert slack_standin.messages(CHANNEL)[0].ts.replace(".", "") in answer(r2)
    await slack_standin.wait_for(lambda _: thread_done(slack_standin, CHANNEL), timeout=30)
    assert len(slack_standin.messages(CHANNEL)) == 1  # no twin thread


async def test_retry_storm_of_one_mention_is_handled_once(
    bot: InProcessBot, http: httpx.AsyncClient, slack_standin: SlackStandIn, live: LoadedPlatform, store_url: str
) -> None:
    cid = live.platform.disputed_correlation_id
    assert cid
    req = event_callback(app_mention("U0ONCALL", f"<@U0RECON> {cid}", CHANNEL), event_id="Ev0STORM")
    responses = [await post(http, f"{bot.url}/slack/events", req)]
    for n in (1, 2, 3):
        responses.append(await post(http, f"{bot.url}/slack/events", req.retried(n, "http_timeout")))
    assert all(r.status_code == 200 for r in responses)
    await slack_standin.wait_for(lambda _: thread_done(slack_standin, CHANNEL), timeout=30)
    conn = await asyncpg.connect(store_url)
    try:
        assert await conn.fetchval("select count(*) from jobs") == 1
        assert await conn.fetchval("select count(*) from slack_events where event_id = 'Ev0STORM'") == 1
    finally:
        await conn.close()
    assert len(slack_standin.messages(CHANNEL)) == 1
    await jobs_settled(store_url, 1)
    thread_keys = [(c.args.get("metadata") or {}).get("event_payload", {}).get("key")
                   for c in slack_standin.calls_to("chat.postMessage")]
    assert sorted(k for k in thread_keys if k == "parent" or str(k).startswith("step:")) == sorted(
        ["parent", "step:logs", "step:billing_rows", "step:trace", "step:pivot", "step:attribution",
         "step:reconciliation"])


async def test_429_storm_delays_but_drops_nothing_and_keeps_order(
    bot: InProcessBot, http: httpx.AsyncClient, slack_standin: SlackStandIn, live: LoadedPlatform
) -> None:
    cid = live.platform.disputed_correlation_id
    assert cid
    slack_standin.rate_limit("chat.postMessage", times=3, retry_after=1)
    await post(http, f"{bot.url}/slack/events", slash_command(text=cid, channel_id=CHANNEL))
    await slack_standin.wait_for(lambda _: thread_done(slack_standin, CHANNEL), timeout=40)
    calls = slack_standin.calls_to("chat.postMessage")
    limited = [c for c in calls if c.status == 429]
    assert len(limited) == 3
    for c in limited:  # the next attempt came no sooner than Retry-After
        nxt = next(d for d in calls if d.seq > c.seq)
        assert nxt.at - c.at >= 1.0
    thread = slack_standin.thread(CHANNEL, slack_standin.messages(CHANNEL)[0].ts)
    assert [json.dumps(m.blocks).split("/6 ")[1][:10] for m in thread[1:1 + STEPS]] == [
        "Logs by co", "Billing ro", "Trace stag", "App-instan", "Attributio", "Reconcilia"]


async def test_health_and_readiness(bot: InProcessBot, http: httpx.AsyncClient) -> None:
    assert (await http.get(f"{bot.url}/healthz")).json() == {"status": "ok"}
    r = await http.get(f"{bot.url}/readyz")
    assert r.status_code == 200 and r.json()["status"] == "ready"


@pytest.mark.parametrize("missing", ["SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET"])
def test_serve_refuses_to_start_without_credentials(missing: str, tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("SLACK_")}
    env.update({"SLACK_BOT_TOKEN": "xoxb-x", "SLACK_SIGNING_SECRET": "s", "RECON_DATA_DIR": str(tmp_path)})
    env.pop(missing)
    p = subprocess.run([sys.executable, "-m", "bot", "serve", "--port", "0"], env=env, capture_output=True,
                       text=True, timeout=60, check=False)
    assert p.returncode == 2 and missing in p.stderr


async def test_no_token_or_signing_secret_in_any_log_line(
    bot: InProcessBot, http: httpx.AsyncClient, slack_standin: SlackStandIn, live: LoadedPlatform,
    caplog: pytest.LogCaptureFixture,
) -> None:
    import logging

    from tests.standins.slack_requests import DEFAULT_SIGNING_SECRET

    caplog.set_level(logging.DEBUG)
    cid = live.platform.disputed_correlation_id
    assert cid
    await post(http, f"{bot.url}/slack/events", slash_command(text=cid, channel_id=CHANNEL))
    await post(http, f"{bot.url}/slack/events", slash_command(text="x").resigned(bad_signature=True))
    await slack_standin.wait_for(lambda _: thread_done(slack_standin, CHANNEL), timeout=30)
    logged = caplog.text + "".join(str(r.args) for r in caplog.records)
    assert len(caplog.records) > 10  # something was logged
    for secret in ("xoxb-recon-test-token", DEFAULT_SIGNING_SECRET):
        assert secret not in logged


async def test_recon_verify_answers_in_the_incident_thread(
    bot: InProcessBot, http: httpx.AsyncClient, slack_standin: SlackStandIn, live: LoadedPlatform, store_url: str
) -> None:
    cid = live.platform.disputed_correlation_id
    assert cid
    await post(http, f"{bot.url}/slack/events", slash_command(text=cid, channel_id=CHANNEL))
    await slack_standin.wait_for(lambda _: thread_done(slack_standin, CHANNEL), timeout=30)
    await jobs_settled(store_url, 1)
    conn = await asyncpg.connect(store_url)
    try:
        incident = await conn.fetchval("select incident_id from incidents")
    finally:
        await conn.close()
    r = await post(http, f"{bot.url}/slack/events", slash_command(text=f"verify {incident}", channel_id=CHANNEL))
    assert "Verifying" in answer(r)
    parent = slack_standin.messages(CHANNEL)[0]
    await slack_standin.wait_for(lambda _: any(
        f"Verification of {incident}" in (m.text or "") for m in slack_standin.thread(CHANNEL, parent.ts)), timeout=30)
    v = next(m for m in slack_standin.thread(CHANNEL, parent.ts) if f"Verification of {incident}" in (m.text or ""))
    assert "not recovered" in (v.text or "") and "Not recovered yet" in json.dumps(v.blocks)
    # no usage export was read: criterion 1 is not verified, and the thread says how to give one
    assert "not verified" in json.dumps(v.blocks) and "share the CSV in the incident" in json.dumps(v.blocks)
    r = await post(http, f"{bot.url}/slack/events", slash_command(text="verify INC-bogus", channel_id=CHANNEL))
    assert "needs an incident id" in answer(r)


async def test_metrics_count_what_happened(
    bot: InProcessBot, http: httpx.AsyncClient, slack_standin: SlackStandIn, live: LoadedPlatform, store_url: str
) -> None:
    cid = live.platform.disputed_correlation_id
    assert cid
    slack_standin.rate_limit("chat.postMessage", times=1, retry_after=1)
    await post(http, f"{bot.url}/slack/events", slash_command(text=cid, channel_id=CHANNEL))
    await slack_standin.wait_for(lambda _: thread_done(slack_standin, CHANNEL), timeout=30)
    await jobs_settled(store_url, 1)
    r = await http.get(f"{bot.url}/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    text = r.text

    def value(line_start: str) -> float:
        line = next(x for x in text.splitlines() if x.startswith(line_start))
        return float(line.rsplit(" ", 1)[1])

    assert value('recon_diagnoses_total{outcome="complete"}') == 1
    assert value('recon_diagnosis_duration_seconds_count{outcome="complete"}') == 1
    assert value('recon_source_calls_total{source="billing"}') >= 8
    assert value('recon_source_calls_total{source="loki"}') >= 2
    assert value('recon_jobs{status="done"}') == 1
    assert value('recon_jobs_completed_total{kind="diagnose"}') == 1
    assert value('recon_slack_ratelimited_total{method="chat.postMessage"}') == 1
    assert value('recon_slack_calls_total{method="chat.postMessage"}') >= 7
    assert value('recon_http_requests_total{route="/slack/events",status="200"}') == 1
