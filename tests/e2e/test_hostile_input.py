"""Hostile input through the real HTTP face of ``recon serve``: malformed signature
headers are a bad signature (401), JSON nested deeper than any parser goes is a bad
body (400), a group key of thousands of characters is stored like any other; never a
500, never a 503 that the sender would retry forever."""

from __future__ import annotations

import random
import string
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest_asyncio

from tests.conftest import LoadedPlatform, load
from tests.e2e.slackbot import InProcessBot, bot_env, bot_in_process, live_platform
from tests.standins.slack import SlackStandIn
from tests.standins.slack_requests import DEFAULT_SIGNING_SECRET, sign, signature, url_verification

TOKEN = "alert-token-for-tests"
DEEP = 100_000  # far deeper than Python's recursion limit


@pytest_asyncio.fixture
async def bot(fresh_database: str, tmp_path: Path, store_url: str,
              slack_standin: SlackStandIn) -> AsyncIterator[InProcessBot]:
    live: LoadedPlatform = await load(live_platform(), fresh_database, tmp_path / "evidence")
    env = bot_env(store_url, live.billing_url, live.evidence, slack_standin, ALERT_WEBHOOK_TOKEN=TOKEN,
                  RECON_ALERT_CHANNEL="C0ALERTS", RECON_SLACK_RATE_PER_S="1000")
    async with bot_in_process(env) as b:
        yield b


def deep(depth: int = DEEP) -> str:
    return "[" * depth + "]" * depth


async def test_malformed_signature_headers_are_a_bad_signature(bot: InProcessBot, http: httpx.AsyncClient) -> None:
    body = url_verification("chal-1").body
    now = str(int(time.time()))
    good = signature(body, DEFAULT_SIGNING_SECRET, now)
    hostile: list[tuple[bytes, bytes]] = [
        (b"abc", good.encode()),  # a timestamp that is not a number
        (b"1e9", good.encode()),
        (b"9" * 5000, good.encode()),  # more digits than int() converts
        (b"-" + now.encode(), good.encode()),
        (now.encode(), ("v0=" + "é" * 64).encode()),  # a signature that is not ASCII
        (now.encode(), b"v0=\xff\xfe" + good.encode()[5:]),  # nor UTF-8
    ]
    for ts, sig in hostile:
        r = await http.post(f"{bot.url}/slack/events", content=body,
                            headers={"Content-Type": "application/json", "X-Slack-Request-Timestamp": ts,
                                     "X-Slack-Signature": sig})
        assert (r.status_code, r.json()) == (401, {"error": "invalid request"}), (ts[:20], sig[:20])
    r = await http.post(f"{bot.url}/slack/events", content=body,
                        headers={**sign(body, DEFAULT_SIGNING_SECRET), "Content-Type": "application/json"})
    assert r.status_code == 200 and "chal-1" in r.text  # and a well-signed one after them is answered


async def test_json_nested_too_deeply_is_a_bad_body(bot: InProcessBot, http: httpx.AsyncClient) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    alertmanager = '{"version": "4", "groupKey": "g", "status": "firing", "x": ' + deep() + ', "alerts": []}'
    for path in ("/alerts/alertmanager", "/alerts/grafana"):
        for body in (alertmanager, deep()):
            r = await http.post(f"{bot.url}{path}", content=body.encode(), headers=auth)
            assert r.status_code == 400 and "nested too deeply" in r.json()["error"], (path, r.text[:200])
    event = '{"type": "event_callback", "event": ' + deep() + "}"
    form = "payload=" + deep(20_000)
    for body, content_type in ((event, "application/json"), (form, "application/x-www-form-urlencoded")):
        r = await http.post(f"{bot.url}/slack/events", content=body.encode(),
                            headers={**sign(body.encode(), DEFAULT_SIGNING_SECRET), "Content-Type": content_type})
        assert r.status_code == 400 and "nested too deeply" in r.json()["error"], (content_type, r.text[:200])


def am_payload(group_key: str) -> dict[str, Any]:
    labels = {"alertname": "AppRuntimeMeteringDrift", "severity": "warning"}
    return {"version": "4", "groupKey": group_key, "truncatedAlerts": 0, "status": "firing", "receiver": "recon",
            "groupLabels": labels, "commonLabels": labels, "commonAnnotations": {}, "externalURL": "http://am",
            "alerts": [{"status": "firing", "labels": labels, "annotations": {}, "startsAt": "2026-11-25T10:00:00Z",
                        "endsAt": "0001-01-01T00:00:00Z", "fingerprint": "fp"}]}


async def test_a_group_key_of_thousands_of_characters_is_taken_in(bot: InProcessBot,
                                                                  http: httpx.AsyncClient) -> None:
    rnd = random.Random(5)
    values = ", ".join(f'l{i}="{"".join(rnd.choices(string.ascii_letters, k=48))}"' for i in range(120))
    key = f"{{}}/{{}}:{{{values}}}"
    assert len(key) > 6000
    auth = {"Authorization": f"Bearer {TOKEN}"}
    first = await http.post(f"{bot.url}/alerts/alertmanager", json=am_payload(key), headers=auth)
    again = await http.post(f"{bot.url}/alerts/alertmanager", json=am_payload(key), headers=auth)
    assert first.status_code == 200 and again.status_code == 200, first.text
    assert (first.json()["action"], again.json()["action"]) == ("open", "repeat")
    assert first.json()["group_id"] == again.json()["group_id"]
