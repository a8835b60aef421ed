"""Alert triage files follow-up tickets too: an Alertmanager notification whose triage
records a diagnosis with follow-ups queues the ticket job, which links each ticket in the
alert's thread."""

from __future__ import annotations

import httpx
import pytest

from bot.flows.followup_tickets import KIND
from tests.conftest import LoadedPlatform
from tests.e2e.slackbot import InProcessBot, jobs_settled
from tests.e2e.test_alerts import ALERTS, SETTINGS, am_payload, send
from tests.standins.github import GitHubStandIn, github_standin
from tests.standins.slack import SlackStandIn

__all__ = ["github_standin"]


@pytest.fixture
def bot_settings(github_standin: GitHubStandIn) -> dict[str, str]:
    return {**SETTINGS, "RECON_TRACKER": "github", "GITHUB_API_URL": github_standin.url,
            "GITHUB_TOKEN": github_standin.token, "GITHUB_REPOSITORY": "acme/billing"}


async def test_an_alert_triage_files_tickets_in_its_thread(
    bot: InProcessBot, http: httpx.AsyncClient, slack_standin: SlackStandIn, github_standin: GitHubStandIn,
    live: LoadedPlatform, store_url: str,
) -> None:
    r = await send(http, bot, am_payload(live))
    assert r.status_code == 200 and r.json()["action"] == "open"
    jobs = await jobs_settled(store_url, 2)
    assert [(j["kind"], j["status"]) for j in jobs] == [("alert", "done"), (KIND, "done")]
    issues = github_standin.issues_of("acme/billing")
    assert issues
    parent = slack_standin.messages(ALERTS)[0]
    replies = [m.text or "" for m in slack_standin.thread(ALERTS, parent.ts) if (m.text or "").startswith(
        "Follow-up for")]
    assert all(f"|#{i.number}>" in " ".join(replies) for i in issues)
    assert len(replies) == len(issues)
