"""Three ``recon serve`` processes on one store: every Slack event, alert and job is
handled once; a SIGTERM'd process hands its running job over; a killed one's job is
finished by another after its lease; nothing is posted twice."""

from __future__ import annotations

import asyncio
import json
import signal
from collections import Counter
from pathlib import Path

import asyncpg
import httpx

from tests.conftest import LoadedPlatform
from tests.e2e.slackbot import BotProcess, bot_env, jobs_settled, start_bot_process
from tests.standins.slack import SlackStandIn
from tests.standins.slack_requests import app_mention, event_callback, post, slash_command

CHANNEL = "C0SCALE"
ALERTS = "C0SCALEALERTS"
TOKEN = "scale-alert-token"


def keys(slack: SlackStandIn) -> Counter[tuple[str, str]]:
    out: Counter[tuple[str, str]] = Counter()
    for c in slack.calls_to("chat.postMessage"):
        p = (c.args.get("metadata") or {}).get("event_payload") or {}
        if c.status == 200 and p:
            out[(str(p.get("ns")), str(p.get("key")))] += 1
    return out


async def test_three_processes_share_the_work_once(
    live: LoadedPlatform, store_url: str, slack_standin: SlackStandIn, tmp_path: Path,
) -> None:
    env = bot_env(store_url, live.billing_url, live.evidence, slack_standin, ALERT_WEBHOOK_TOKEN=TOKEN,
                  RECON_ALERT_CHANNEL=ALERTS, RECON_SLACK_RATE_PER_S="1000", RECON_SHUTDOWN_GRACE_S="0.5")
    procs: list[BotProcess] = []
    try:
        for i in range(3):
            procs.append(await start_bot_process(env, tmp_path / f"p{i}.log"))
        a, b, _ = procs
        slack_standin.delay_s = 0.25  # jobs take a few seconds: they are running when processes stop
        cids = [call.correlation_id for call in live.platform.calls[:3]]
        async with httpx.AsyncClient(timeout=15) as http:
            for proc, cid in zip(procs, cids, strict=True):
                r = await post(http, f"{proc.url}/slack/events", slash_command(text=cid, channel_id=CHANNEL))
                assert r.status_code == 200
            # one mention, delivered to every process (Slack retries land anywhere)
            mention = event_callback(app_mention("U0ONCALL", f"<@U0RECON> {live.platform.calls[3].correlation_id}",
                                                 CHANNEL), event_id="Ev0SCALE")
            await asyncio.gather(*(post(http, f"{p.url}/slack/events", mention.retried(i, "http_timeout") if i
                                        else mention) for i, p in enumerate(procs)))
            # one alert group, notified to every process at once
            alert = {"version": "4", "groupKey": '{}:{alertname="ScaleTest"}', "status": "firing",
                     "receiver": "recon", "groupLabels": {"alertname": "ScaleTest"},
                     "commonLabels": {"alertname": "ScaleTest", "severity": "page"}, "commonAnnotations": {},
                     "externalURL": "http://am", "truncatedAlerts": 0,
                     "alerts": [{"status": "firing", "labels": {"alertname": "ScaleTest", "severity": "page",
                                                                "app_instance_id": "ai-nowhere"},
                                 "annotations": {}, "startsAt": "2026-11-25T10:00:00Z",
                                 "endsAt": "0001-01-01T00:00:00Z", "fingerprint": "f1"}]}
            answers = await asyncio.gather(*(http.post(f"{p.url}/alerts/alertmanager", json=alert,
                                                       headers={"Authorization": f"Bearer {TOKEN}"}) for p in procs))
            assert sorted(r.json()["action"] for r in answers) == ["open", "repeat", "repeat"]
        # wait until work is under way, then stop one process gracefully and kill another
        await slack_standin.wait_for(lambda calls: sum(x.method == "chat.postMessage" for x in calls) >= 6,
                                     timeout=30)
        a.proc.send_signal(signal.SIGTERM)
        b.proc.send_signal(signal.SIGKILL)
        assert a.proc.wait(timeout=30) == 0
        b.proc.wait(timeout=10)
        slack_standin.delay_s = 0.0
        jobs = await jobs_settled(store_url, 5, timeout=90)
        jobs = await jobs_settled(store_url, len(jobs), timeout=90)
    finally:
        for p in procs:
            if p.proc.poll() is None:
                p.proc.send_signal(signal.SIGTERM)
                p.proc.wait(timeout=30)
    assert all(j["status"] == "done" for j in jobs)
    # 3 /recon and 1 mention; the alert group's notifications may take one job or a few (each shown once)
    assert [j["kind"] for j in jobs].count("diagnose") == 4 and {j["kind"] for j in jobs} == {"diagnose", "alert"}
    dup = {k: n for k, n in keys(slack_standin).items() if n > 1}
    assert dup == {}, dup  # nothing posted twice
    threads = [m for m in slack_standin.messages(CHANNEL) if "recon ·" in (m.text or "")]
    assert len(threads) == 4 and all("Drift" in json.dumps(m.blocks) or "No drift" in json.dumps(m.blocks)
                                     for m in threads)
    assert len(slack_standin.messages(ALERTS)) == 1
    conn = await asyncpg.connect(store_url)
    try:
        assert await conn.fetchval("select count(*) from slack_events where event_id = 'Ev0SCALE'") == 1
        assert await conn.fetchval("select count(*) from alert_groups") == 1
        assert await conn.fetchval("select count(*) from diagnosis_runs where status = 'running'") == 0
    finally:
        await conn.close()
    assert "released for another worker" in (tmp_path / "p0.log").read_text()
