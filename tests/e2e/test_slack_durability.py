"""Durable jobs across real ``recon serve`` processes: a process killed mid-job, its
job finished by another without a duplicate post; two processes running each job once."""

from __future__ import annotations

import json
import signal
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest_asyncio

from tests.conftest import LoadedPlatform
from tests.e2e.slackbot import STEPS, BotProcess, bot_env, jobs_settled, start_bot_process
from tests.standins.slack import SlackCall, SlackStandIn
from tests.standins.slack_requests import post, slash_command

CHANNEL = "C0DURABLE"


@pytest_asyncio.fixture
async def procs() -> AsyncIterator[list[BotProcess]]:
    started: list[BotProcess] = []
    yield started
    for p in started:
        if p.proc.poll() is None:
            p.proc.send_signal(signal.SIGTERM)
    for p in started:
        try:
            p.proc.wait(timeout=30)
        except Exception:
            p.proc.kill()


def post_keys(slack: SlackStandIn) -> Counter[str]:
    def key(c: SlackCall) -> str:  # the namespace too: every prompt's message has the key "prompt"
        payload = (c.args.get("metadata") or {}).get("event_payload", {})
        return str(payload.get("key")) if str(payload.get("ns", "")).startswith("job:") else \
            f"{payload.get('ns')}/{payload.get('key')}"

    return Counter(key(c) for c in slack.calls_to("chat.postMessage") if c.status == 200)


def finished_threads(slack: SlackStandIn) -> int:
    return sum(1 for m in slack.messages(CHANNEL)
               if len(slack.thread(CHANNEL, m.ts)) >= 1 + STEPS and "Drift" in json.dumps(m.blocks))


async def test_killed_mid_job_is_finished_by_another_process_without_duplicates(
    live: LoadedPlatform, store_url: str, slack_standin: SlackStandIn, tmp_path: Path,
    procs: list[BotProcess],
) -> None:
    env = bot_env(store_url, live.billing_url, live.evidence, slack_standin)
    a = await start_bot_process(env, tmp_path / "a.log")
    procs.append(a)
    slack_standin.delay_s = 0.4  # slow posts: the job is mid-way when we kill its process
    cid = live.platform.disputed_correlation_id
    assert cid
    async with httpx.AsyncClient(timeout=10) as http:
        r = await post(http, f"{a.url}/slack/events", slash_command(text=cid, channel_id=CHANNEL))
    assert r.status_code == 200
    await slack_standin.wait_for(lambda calls: sum(c.method == "chat.postMessage" for c in calls) >= 3, timeout=30)
    a.proc.send_signal(signal.SIGKILL)
    a.proc.wait(timeout=10)
    slack_standin.delay_s = 0.0
    b = await start_bot_process(env, tmp_path / "b.log")
    procs.append(b)
    await slack_standin.wait_for(lambda _: finished_threads(slack_standin) == 1, timeout=60)
    await jobs_settled(store_url, 1, timeout=60)
    keys = post_keys(slack_standin)
    assert set(keys.values()) == {1}, keys  # every message posted exactly once
    assert len(keys) == 1 + STEPS + 3  # the parent, the steps, the follow-ups, the freeze and corrections prompts
    assert len(slack_standin.messages(CHANNEL)) == 1
    conn = await asyncpg.connect(store_url)
    try:
        job = await conn.fetchrow("select status, attempts from jobs")
        runs = [r["status"] for r in await conn.fetch("select status from diagnosis_runs order by run_id")]
    finally:
        await conn.close()
    assert job["status"] == "done" and job["attempts"] == 2
    # the killed attempt's run is marked failed if it had not finished; none is left running
    assert runs[-1] == "done" and "running" not in runs and len(runs) == 2


async def test_two_processes_run_each_job_once(
    live: LoadedPlatform, store_url: str, slack_standin: SlackStandIn, tmp_path: Path, procs: list[BotProcess],
) -> None:
    env = bot_env(store_url, live.billing_url, live.evidence, slack_standin)
    a = await start_bot_process(env, tmp_path / "a.log")
    b = await start_bot_process(env, tmp_path / "b.log")
    procs.extend([a, b])
    cids = [c.correlation_id for c in live.platform.calls[:4]]
    async with httpx.AsyncClient(timeout=10) as http:
        for i, cid in enumerate(cids):
            target = (a, b)[i % 2]
            r = await post(http, f"{target.url}/slack/events", slash_command(text=cid, channel_id=CHANNEL))
            assert r.status_code == 200
    def all_done(_: object) -> bool:
        return sum(1 for m in slack_standin.messages(CHANNEL)
                   if len(slack_standin.thread(CHANNEL, m.ts)) >= 1 + STEPS
                   and "running" not in json.dumps(m.blocks)) == len(cids)

    await slack_standin.wait_for(all_done, timeout=60)
    await jobs_settled(store_url, len(cids), timeout=60)
    assert len(slack_standin.messages(CHANNEL)) == len(cids)
    conn = await asyncpg.connect(store_url)
    try:
        jobs = await conn.fetch("select status, attempts, lease_owner from jobs")
        runs = await conn.fetchval("select count(*) from diagnosis_runs where status = 'done'")
    finally:
        await conn.close()
    assert [(j["status"], j["attempts"]) for j in jobs] == [("done", 1)] * len(cids)
    assert runs == len(cids)
