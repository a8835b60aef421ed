"""``recon serve`` logs JSON lines an operator can follow: each carries the incident and
correlation id of the work it is about; no credential ever appears."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import httpx

from tests.conftest import LoadedPlatform
from tests.e2e.slackbot import STEPS, bot_env, jobs_settled, start_bot_process
from tests.standins.slack import SlackStandIn
from tests.standins.slack_requests import DEFAULT_SIGNING_SECRET, post, slash_command


async def test_json_log_lines_carry_incident_and_correlation_ids(
    live: LoadedPlatform, store_url: str, slack_standin: SlackStandIn, tmp_path: Path,
) -> None:
    env = bot_env(store_url, live.billing_url, live.evidence, slack_standin)
    bot = await start_bot_process(env, tmp_path / "serve.log")
    try:
        cid = live.platform.disputed_correlation_id
        assert cid
        async with httpx.AsyncClient(timeout=10) as http:
            await post(http, f"{bot.url}/slack/events", slash_command(text=cid, channel_id="C0LOGS"))
        await slack_standin.wait_for(lambda _: len(slack_standin.calls_to("chat.postMessage")) >= 1 + STEPS,
                                     timeout=30)
        await jobs_settled(store_url, 1)
    finally:
        bot.proc.send_signal(signal.SIGTERM)
        bot.proc.wait(timeout=30)
    assert bot.proc.returncode == 0  # a clean, graceful stop
    raw = (tmp_path / "serve.log").read_text()
    lines = [json.loads(x) for x in raw.splitlines() if x.startswith("{")]
    assert lines and all({"ts", "level", "logger", "msg"} <= set(x) for x in lines)
    about = [x for x in lines if x.get("correlation_id") == cid]
    assert about and all(x.get("incident_id", "").startswith("INC-") for x in about)
    assert any(x.get("job_id") for x in about)
    for secret in ("xoxb-recon-test-token", DEFAULT_SIGNING_SECRET):
        assert secret not in raw
