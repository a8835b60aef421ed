"""A real Alertmanager (Debian's prometheus-alertmanager) delivers to the bot: alerts
pushed through its API become one thread per group; resolving them is shown there."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

import asyncpg
import pytest

from tests.conftest import LoadedPlatform
from tests.e2e.slackbot import STEPS, InProcessBot
from tests.standins.alertmanager import RealAlertmanager
from tests.standins.slack import SlackStandIn

TOKEN = "am-bearer-for-tests"
CHANNEL = "C0AMREAL"


@pytest.fixture
def bot_settings() -> dict[str, str]:
    return {"ALERT_WEBHOOK_TOKEN": TOKEN, "RECON_ALERT_CHANNEL": CHANNEL, "RECON_SLACK_RATE_PER_S": "1000"}


async def test_real_alertmanager_groups_become_threads_and_resolve_there(
    bot: InProcessBot, live: LoadedPlatform, slack_standin: SlackStandIn, store_url: str,
    real_alertmanager_factory: Callable[..., Awaitable[RealAlertmanager]],
) -> None:
    am = await real_alertmanager_factory(f"{bot.url}/alerts/alertmanager", bearer_token=TOKEN,
                                         group_by=("alertname", "org_id"))
    cid = live.platform.disputed_correlation_id
    org = live.platform.instances[0].org_id
    drift = [{"labels": {"alertname": "AppRuntimeMeteringDrift", "severity": "page", "org_id": org,
                         "correlation_id": cid or "", "app_instance_id": f"ai-{i}"},
              "annotations": {"summary": "metering drift"}} for i in range(3)]
    ledger = [{"labels": {"alertname": "UsageLedgerMismatch", "severity": "warning", "org_id": org},
               "annotations": {"summary": "ledger mismatch"}}]
    await am.push(drift + ledger)

    def threads(_: object) -> int:
        return sum(1 for m in slack_standin.messages(CHANNEL)
                   if len(slack_standin.thread(CHANNEL, m.ts)) >= 1 + STEPS and "triaging" not in json.dumps(m.blocks))

    await slack_standin.wait_for(lambda c: threads(c) == 2, timeout=60)
    tops = slack_standin.messages(CHANNEL)
    assert len(tops) == 2  # one thread per group, however the notifications were split
    drift_parent = next(m for m in tops if "AppRuntimeMeteringDrift" in json.dumps(m.blocks))
    assert "Drift found" in json.dumps(drift_parent.blocks)

    await am.resolve(drift)
    await slack_standin.wait_for(
        lambda _: any("resolved at" in (r.text or "") for r in slack_standin.thread(CHANNEL, drift_parent.ts)),
        timeout=30)
    assert len(slack_standin.messages(CHANNEL)) == 2
    conn = await asyncpg.connect(store_url)
    try:
        rows = await conn.fetch("select source, status from alert_groups order by group_id")
        agents = await conn.fetchval("select count(*) from alert_notifications "
                                     "where payload::json ->> 'version' = '4'")
    finally:
        await conn.close()
    assert [r["source"] for r in rows] == ["alertmanager", "alertmanager"]
    assert "resolved" in {r["status"] for r in rows} and agents >= 3
