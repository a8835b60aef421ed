"""Alert auto-triage through the real HTTP face: Alertmanager and Grafana webhooks with
bearer tokens, one thread per alert group, repeats, resolves, re-fires, storms, and
alert posts in watched channels."""

from __future__ import annotations

import asyncio
import copy
import json
from functools import partial
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from tests.conftest import LoadedPlatform
from tests.e2e.conftest import live_env, thread_done
from tests.e2e.slackbot import STEPS, InProcessBot, bot_in_process
from tests.standins.slack import SlackStandIn
from tests.standins.slack_requests import event_callback, message, post

TOKEN = "alert-token-for-tests"
ALERTS = "C0ALERTS"
LEDGER = "C0LEDGER"
WATCHED = "C0WATCHED"
FIXTURES = Path(__file__).parents[1] / "fixtures" / "alerts"
ROUTES = json.dumps([{"name": "ledger", "match": {"alertname": "UsageLedgerMismatch"}, "channel": LEDGER}])
SETTINGS = {"ALERT_WEBHOOK_TOKEN": TOKEN, "RECON_ALERT_CHANNEL": ALERTS, "RECON_ALERT_ROUTES": ROUTES,
            "RECON_WATCH_CHANNELS": WATCHED, "RECON_SLACK_RATE_PER_S": "1000"}
env_for = partial(live_env, **SETTINGS)  # env_for(live, store_url, slack, **extra): this file's bots


def fixture(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / name).read_text())


def am_payload(live: LoadedPlatform, *, group: str = "g1", status: str = "firing",
               alertname: str = "AppRuntimeMeteringDrift", severity: str = "page",
               labels: dict[str, str] | None = None) -> dict[str, Any]:
    cid = live.platform.disputed_correlation_id
    lab = {"alertname": alertname, "severity": severity, "correlation_id": cid or "", **(labels or {})}
    return {
        "version": "4", "groupKey": f'{{}}:{{alertname="{alertname}",group="{group}"}}', "truncatedAlerts": 0,
        "status": status, "receiver": "recon", "groupLabels": {"alertname": alertname},
        "commonLabels": lab, "commonAnnotations": {"summary": "metering drift on a project-wide start"},
        "externalURL": "http://alertmanager:9093",
        "alerts": [{"status": status, "labels": dict(lab), "annotations": {"summary": "drift"},
                    "startsAt": "2026-11-25T10:00:00Z",
                    "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else "2026-11-25T11:00:00Z",
                    "generatorURL": "http://prom/graph", "fingerprint": f"fp-{group}"}],
    }


@pytest.fixture
def bot_settings() -> dict[str, str]:
    return SETTINGS


async def send(http: httpx.AsyncClient, bot: InProcessBot, doc: Any, *, path: str = "alertmanager",
               token: str | None = TOKEN) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return await http.post(f"{bot.url}/alerts/{path}", json=doc, headers=headers)


async def test_tokens_sizes_and_shapes(bot: InProcessBot, http: httpx.AsyncClient, live: LoadedPlatform) -> None:
    doc = am_payload(live)
    assert (await send(http, bot, doc, token=None)).status_code == 401
    r = await send(http, bot, doc, token="wrong")
    assert r.status_code == 401 and r.headers["WWW-Authenticate"].startswith("Bearer")
    r = await http.post(f"{bot.url}/alerts/alertmanager", content=b"{not json",
                        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
    assert r.status_code == 400 and "not JSON" in r.json()["error"]
    bad = copy.deepcopy(doc)
    bad["alerts"] = "nope"
    r = await send(http, bot, bad)
    assert r.status_code == 400 and "alerts" in r.json()["error"]
    r = await http.post(f"{bot.url}/alerts/grafana", content=b"x" * (2 * 1024 * 1024),
                        headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 413
    # JSON that Python reads but the store cannot keep: refused with the reason, not retried
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    nan = json.dumps(doc).replace('"truncatedAlerts": 0', '"truncatedAlerts": NaN').encode()
    r = await http.post(f"{bot.url}/alerts/alertmanager", content=nan, headers=headers)
    assert r.status_code == 400 and "NaN is not a JSON number" in r.json()["error"]
    nul = copy.deepcopy(doc)
    nul["commonAnnotations"]["summary"] = "a NUL \u0000 here"
    r = await http.post(f"{bot.url}/alerts/alertmanager", content=json.dumps(nul).encode(), headers=headers)
    assert r.status_code == 400 and "cannot keep this payload" in r.json()["error"]
    r = await http.post(f"{bot.url}/alerts/alertmanager", content=json.dumps(doc).encode("utf-16"), headers=headers)
    assert r.status_code == 400 and "UTF-8" in r.json()["error"]
    assert (await send(http, bot, doc)).status_code == 200  # and the good one after them is taken in


async def test_no_token_configured_refuses_everything_and_says_why(
    live: LoadedPlatform, store_url: str, slack_standin: SlackStandIn, http: httpx.AsyncClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    env = env_for(live, store_url, slack_standin)
    env.pop("ALERT_WEBHOOK_TOKEN")
    async with bot_in_process(env) as b:
        r = await send(http, b, am_payload(live))
    assert r.status_code == 401 and "ALERT_WEBHOOK_TOKEN" in r.json()["error"]
    assert "ALERT_WEBHOOK_TOKEN is not set" in caplog.text


async def test_one_thread_per_group_repeat_resolve_refire(
    bot: InProcessBot, http: httpx.AsyncClient, slack_standin: SlackStandIn, live: LoadedPlatform, store_url: str,
) -> None:
    doc = am_payload(live)
    r = await send(http, bot, doc)
    assert r.status_code == 200 and r.json()["action"] == "open"
    await slack_standin.wait_for(lambda _: thread_done(slack_standin, ALERTS), timeout=30)
    parent = slack_standin.messages(ALERTS)[0]
    assert "AppRuntimeMeteringDrift" in json.dumps(parent.blocks) and "FIRING" in json.dumps(parent.blocks)
    # the same notification again (a retry, a repeat_interval): no new message, the parent's counts move
    updates_before = len(slack_standin.calls_to("chat.update"))
    assert (await send(http, bot, doc)).json()["action"] == "repeat"
    await slack_standin.wait_for(lambda c: len([x for x in c if x.method == "chat.update"]) > updates_before)
    assert "2 notification(s)" in json.dumps(slack_standin.message(ALERTS, parent.ts).blocks)  # type: ignore[union-attr]
    # resolved: a reply, and the parent says so
    assert (await send(http, bot, am_payload(live, status="resolved"))).json()["action"] == "resolve"
    await slack_standin.wait_for(
        lambda _: any("resolved at" in (m.text or "") for m in slack_standin.thread(ALERTS, parent.ts)))
    await slack_standin.wait_for(
        lambda _: "RESOLVED" in json.dumps(slack_standin.message(ALERTS, parent.ts).blocks))  # type: ignore[union-attr]
    # fires again within the reopen window: the same thread
    assert (await send(http, bot, doc)).json()["action"] == "refire"
    await slack_standin.wait_for(
        lambda _: any("firing again" in (m.text or "") for m in slack_standin.thread(ALERTS, parent.ts)))
    assert len(slack_standin.messages(ALERTS)) == 1
    conn = await asyncpg.connect(store_url)
    try:
        g = await conn.fetchrow("select notifications, generation, incident_id from alert_groups")
        actions = [r["action"] for r in await conn.fetch("select action from alert_notifications order by 1")]
        inc = await conn.fetchrow("select origin, subject_kind from incidents where incident_id = $1",
                                  g["incident_id"])
        runs = await conn.fetch("select incident_id from diagnosis_runs")
        incidents = await conn.fetchval("select count(*) from incidents")
    finally:
        await conn.close()
    # the diagnosis is recorded into the alert group's incident, not a second one of its subject
    assert runs and {r["incident_id"] for r in runs} == {g["incident_id"]}
    assert incidents == 1
    assert (g["notifications"], g["generation"]) == (4, 1)
    assert sorted(actions) == sorted(["open", "repeat", "resolve", "refire"])
    assert (inc["origin"], inc["subject_kind"]) == ("alert", "alert_group")


async def test_refire_after_the_window_opens_a_new_thread(
    live: LoadedPlatform, store_url: str, slack_standin: SlackStandIn, http: httpx.AsyncClient,
) -> None:
    async with bot_in_process(env_for(live, store_url, slack_standin, RECON_ALERT_REOPEN_S="0")) as b:
        await send(http, b, am_payload(live))
        await slack_standin.wait_for(lambda _: thread_done(slack_standin, ALERTS), timeout=30)
        await send(http, b, am_payload(live, status="resolved"))
        r = await send(http, b, am_payload(live))
        assert r.json()["action"] == "open"
        await slack_standin.wait_for(lambda _: len(slack_standin.messages(ALERTS)) == 2
                                     and "Drift found" in json.dumps(slack_standin.messages(ALERTS)[1].blocks),
                                     timeout=30)


async def test_concurrent_duplicates_make_one_thread_and_routing_picks_the_channel(
    bot: InProcessBot, http: httpx.AsyncClient, slack_standin: SlackStandIn, live: LoadedPlatform,
) -> None:
    doc = am_payload(live, alertname="UsageLedgerMismatch", group="ledger")
    results = await asyncio.gather(*(send(http, bot, doc) for _ in range(6)))
    assert sorted(r.json()["action"] for r in results) == ["open"] + ["repeat"] * 5
    await slack_standin.wait_for(lambda _: thread_done(slack_standin, LEDGER), timeout=30)
    assert len(slack_standin.messages(LEDGER)) == 1 and slack_standin.messages(ALERTS) == []


async def test_grafana_webhook(bot: InProcessBot, http: httpx.AsyncClient, slack_standin: SlackStandIn,
                               live: LoadedPlatform) -> None:
    doc = fixture("grafana_firing.json")
    cid = live.platform.disputed_correlation_id
    for a in doc["alerts"]:
        a["labels"]["correlation_id"] = cid
    doc["commonLabels"]["correlation_id"] = cid
    r = await send(http, bot, doc, path="grafana")
    assert r.status_code == 200, r.text
    await slack_standin.wait_for(lambda _: any(thread_done(slack_standin, c) for c in (ALERTS, LEDGER)),
                                 timeout=30)


async def test_storm_becomes_one_summary_triaged_by_severity(
    live: LoadedPlatform, store_url: str, slack_standin: SlackStandIn, http: httpx.AsyncClient,
) -> None:
    env = env_for(live, store_url, slack_standin, RECON_STORM_THRESHOLD="3", RECON_STORM_GATHER_S="1")
    severities = ["info", "warning", "critical", "page", "warning", "critical", "low", "page"]
    docs = [am_payload(live, group=f"s{i}", alertname=f"AppRuntimeMeteringDrift{i}", severity=sev,
                       labels={"app_instance_id": f"ai-none-{i}"})
            for i, sev in enumerate(severities)]
    for d in docs:  # these alerts name no correlation id: the app instance is the subject
        d["commonLabels"].pop("correlation_id")
        d["alerts"][0]["labels"].pop("correlation_id")
    async with bot_in_process(env) as b:
        results = await asyncio.gather(*(send(http, b, d) for d in docs))
        assert all(r.status_code == 200 for r in results)

        def settled(_: object) -> bool:
            tops = slack_standin.messages(ALERTS)
            storm = [m for m in tops if "Alert storm" in (m.text or "")]
            return bool(storm) and len(slack_standin.thread(ALERTS, storm[0].ts)) >= 1 + (len(docs) - len(tops) + 1) \
                and f"({len(docs) - len(tops) + 1}/{len(docs) - len(tops) + 1} done)" in json.dumps(storm[0].blocks)

        await slack_standin.wait_for(settled, timeout=60)
    tops = slack_standin.messages(ALERTS)
    assert len(tops) < len(docs)  # not a flood: at most the groups that opened before the storm, plus one summary
    storm = next(m for m in tops if "Alert storm" in (m.text or ""))
    replies = slack_standin.thread(ALERTS, storm.ts)[1:]
    order = {"critical": 0, "page": 1, "warning": 2, "info": 3, "low": 4}
    shown = [next(s for s in order if f"({s})" in (m.text or "")) for m in replies]
    assert shown == sorted(shown, key=order.__getitem__)


async def test_alert_posts_in_watched_channels_are_triaged_in_their_own_thread(
    bot: InProcessBot, http: httpx.AsyncClient, slack_standin: SlackStandIn, live: LoadedPlatform, store_url: str,
) -> None:
    from tests.standins.slack_requests import DEFAULT_SIGNING_SECRET  # noqa: F401  (requests are signed with it)

    cid = live.platform.disputed_correlation_id
    attachments = [{"color": "danger", "title": "[FIRING:1] AppRuntimeMeteringDrift",
                    "text": "*Alert:* metering drift - `page`\n*Details:*\n"
                            "  • *alertname:* `AppRuntimeMeteringDrift`\n"
                            f"  • *severity:* `page`\n  • *correlation_id:* `{cid}`\n"}]
    alert = slack_standin.add_message(WATCHED, "", bot_id="B0ALERTMGR", attachments=attachments)
    chatter = slack_standin.add_message(WATCHED, "deploy finished", bot_id="B0DEPLOY")
    human = slack_standin.add_message(WATCHED, f"is {cid} broken?", user="U0HUMAN")
    for m, kw in ((alert, {"bot_id": "B0ALERTMGR", "attachments": attachments}),
                  (chatter, {"bot_id": "B0DEPLOY"}), (human, {"user": "U0HUMAN"})):
        ev = message(WATCHED, m.text or "", ts=m.ts, **kw)  # type: ignore[arg-type]
        req = event_callback(ev)
        # a delivery and two retries at the same moment: taken in once
        answers = await asyncio.gather(post(http, f"{bot.url}/slack/events", req),
                                       post(http, f"{bot.url}/slack/events", req.retried(1, "http_timeout")),
                                       post(http, f"{bot.url}/slack/events", req.retried(2, "http_timeout")))
        assert all(a.status_code == 200 for a in answers)
    await slack_standin.wait_for(
        lambda _: any("Drift found" in (r.text or "") for r in slack_standin.thread(WATCHED, alert.ts)), timeout=30)
    await slack_standin.wait_for(lambda _: any(
        "Freeze manual" in json.dumps(r.blocks) for r in slack_standin.thread(WATCHED, alert.ts)))
    replies = slack_standin.thread(WATCHED, alert.ts)[1:]
    # the steps, the follow-ups, the verdict (the alert post is not ours to edit), then the freeze prompt
    assert [("/6 " in (r.text or "")) for r in replies[:STEPS]] == [True] * STEPS
    kinds = ["follow-ups" if (r.text or "").startswith("Follow-ups") else "verdict" if "Drift found" in (r.text or "")
             else "prompt" if "Freeze manual" in json.dumps(r.blocks) else "other" for r in replies[STEPS:]]
    assert kinds == ["follow-ups", "verdict", "prompt"]
    assert slack_standin.thread(WATCHED, chatter.ts)[1:] == [] and slack_standin.thread(WATCHED, human.ts)[1:] == []
    conn = await asyncpg.connect(store_url)
    try:
        assert await conn.fetchval("select count(*) from alert_notifications") == 1
        assert await conn.fetchval("select notifications from alert_groups") == 1
    finally:
        await conn.close()


async def test_an_alert_thread_and_its_freeze_prompt_keep_to_the_channel_pace(
    live: LoadedPlatform, store_url: str, slack_standin: SlackStandIn, http: httpx.AsyncClient,
) -> None:
    """Every message the triage posts or updates in a channel, the freeze prompt too, goes
    through one pacer: RECON_SLACK_RATE_PER_S=4 with no burst means 0.25 s between calls."""
    env = env_for(live, store_url, slack_standin, RECON_SLACK_BURST="1")
    env["RECON_SLACK_RATE_PER_S"] = "4"
    async with bot_in_process(env) as b:
        await send(http, b, am_payload(live))
        await slack_standin.wait_for(lambda _: any(
            "Freeze manual" in json.dumps(r.blocks) for m in slack_standin.messages(ALERTS)
            for r in slack_standin.thread(ALERTS, m.ts)), timeout=60)
    calls = sorted((c for c in slack_standin.calls if c.method in ("chat.postMessage", "chat.update")
                    and c.args.get("channel") == ALERTS), key=lambda c: c.at)
    kinds = {"prompt" if "Freeze manual" in json.dumps(c.args.get("blocks")) else c.method for c in calls}
    assert {"prompt", "chat.postMessage", "chat.update"} <= kinds and len(calls) >= 1 + STEPS + 2
    # the pacer lets the k-th call start no earlier than k × 0.25 s after the first; arrivals
    # at the stand-in jitter under load, so each is held to that cumulative bound (a late
    # first arrival or a late one between can only shorten a single gap, not the sum)
    late = 0.1
    behind = [round(k * 0.25 - (c.at - calls[0].at), 3) for k, c in enumerate(calls)]
    assert max(behind) <= late, behind
