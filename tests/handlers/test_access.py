"""Where and who may ask recon (RECON_ALLOWED_CHANNELS, RECON_USERS) and which bots
may post alerts (RECON_ALERT_BOTS), through the real app with signed requests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio

from bot.slack.access import CHANNEL_REFUSED, USER_REFUSED
from handlers.alerts import alert_post
from tests.handlers.conftest import WATCHED, HandlerApp, running_app
from tests.handlers.test_slack_commands import answer
from tests.standins.slack import BOT_USER_ID, SlackStandIn
from tests.standins.slack_requests import app_mention, event_callback, message, slash_command

INCIDENTS = "C0INCIDENT"
ELSEWHERE = "C0RANDOM"
ALLOWED = "U0ALLOWED"
ON_CALL = "U0ONCALL"  # in the user group S0ONCALL
STRANGER = "U0STRANGER"
ALERT_BOT = "B0ALERTMGR"
ALERT = [{"title": "[FIRING:1] AppRuntimeMeteringDrift (correlation_id=corr-8 severity=page)",
          "color": "danger", "text": "metering drift"}]


@pytest_asyncio.fixture
async def guarded(store_url: str, slack_standin: SlackStandIn, tmp_path: Path) -> AsyncIterator[HandlerApp]:
    slack_standin.usergroups["S0ONCALL"] = [ON_CALL]
    async with running_app(store_url, slack_standin, tmp_path, RECON_ALLOWED_CHANNELS=f"{INCIDENTS},{WATCHED}",
                           RECON_USERS=f"{ALLOWED},S0ONCALL,S0GONE", RECON_ALERT_BOTS=ALERT_BOT) as app:
        yield app


async def test_people_in_recon_users_or_its_groups_may_ask_in_allowed_channels(guarded: HandlerApp) -> None:
    r = await guarded.slack(slash_command(text="corr-1", channel_id=INCIDENTS, user_id=ALLOWED))
    assert answer(r).startswith(":mag: Diagnosing correlation_id corr-1")
    r = await guarded.slack(slash_command(text="corr-2", channel_id=INCIDENTS, user_id=ON_CALL))
    assert answer(r).startswith(":mag: Diagnosing correlation_id corr-2")
    assert [j["dedup_key"] for j in await guarded.jobs()] == ["diagnose:correlation_id:corr-1",
                                                              "diagnose:correlation_id:corr-2"]


async def test_someone_else_is_refused_ephemerally_and_nothing_starts(guarded: HandlerApp) -> None:
    for text in ("corr-1 90d", "freezes", "verify INC-20261120-abc123", "help", "<!channel>"):
        r = await guarded.slack(slash_command(text=text, channel_id=INCIDENTS, user_id=STRANGER))
        assert r.json() == {"text": USER_REFUSED, "response_type": "ephemeral"}, text
    assert await guarded.jobs() == []


async def test_another_channel_is_refused_even_for_an_allowed_person(guarded: HandlerApp) -> None:
    for text in ("corr-1", "freezes", "app ai-1 90d"):
        r = await guarded.slack(slash_command(text=text, channel_id=ELSEWHERE, user_id=ALLOWED))
        body = r.json()
        assert body["response_type"] == "ephemeral" and body["text"].startswith(CHANNEL_REFUSED)
        assert f"<#{INCIDENTS}>" in body["text"]
    assert await guarded.jobs() == []


async def test_a_mention_by_someone_else_is_refused_to_them_alone(guarded: HandlerApp,
                                                                  slack_standin: SlackStandIn) -> None:
    mention = app_mention(STRANGER, f"<@{BOT_USER_ID}> corr-5 90d", INCIDENTS)
    assert (await guarded.slack(event_callback(mention))).status_code == 200
    [call] = await slack_standin.wait_for_calls("chat.postEphemeral")
    assert (call.args["channel"], call.args["user"], call.args["text"]) == (INCIDENTS, STRANGER, USER_REFUSED)
    assert not slack_standin.calls_to("chat.postMessage")
    assert await guarded.jobs() == []
    # an allowed person's mention in an allowed channel is taken
    assert (await guarded.slack(event_callback(app_mention(ALLOWED, f"<@{BOT_USER_ID}> corr-5", INCIDENTS)))
            ).status_code == 200
    await guarded.next_queued()
    assert [j["dedup_key"] for j in await guarded.jobs()] == ["diagnose:correlation_id:corr-5"]


async def test_alert_posts_are_taken_from_recon_alert_bots_only(guarded: HandlerApp) -> None:
    intake = guarded.svc.alert_intake
    assert intake.alert_bots == frozenset({ALERT_BOT})
    assert await alert_post(intake, message(WATCHED, "", bot_id="B0SOMEBOT", attachments=ALERT)) is None
    assert await alert_post(intake, message(WATCHED, "", bot_id="B0SOMEBOT", subtype="bot_message",
                                            attachments=ALERT)) is None
    assert await guarded.jobs() == []
    post = message(WATCHED, "", bot_id=ALERT_BOT, attachments=ALERT)
    assert (await guarded.slack(event_callback(post))).status_code == 200
    await guarded.next_queued()
    [job] = await guarded.jobs()
    assert job["kind"] == "alert"


async def test_unset_alert_bots_take_any_bot(app: HandlerApp) -> None:
    assert app.svc.alert_intake.alert_bots is None
    intake = await alert_post(app.svc.alert_intake, message(WATCHED, "", bot_id="B0SOMEBOT", attachments=ALERT))
    assert intake is not None and intake.job_id is not None


async def test_freezes_answer_ephemerally(app: HandlerApp) -> None:
    r = await app.slack(slash_command(text="freezes"))
    assert r.json() == {"text": ":sunny: No active freezes of manual customer-facing adjustments.",
                        "response_type": "ephemeral"}


async def test_bad_input_is_echoed_as_text_not_markup(app: HandlerApp, slack_standin: SlackStandIn) -> None:
    said = answer(await app.slack(slash_command(text="<!subteam^S0ALL|@everyone>")))
    assert "<!subteam" not in said and "&lt;!subteam^S0ALL|@everyone&gt;" in said
    mention = app_mention("U1", f"<@{BOT_USER_ID}> <https://evil.example|click> 48h", "C0INCIDENT")
    assert (await app.slack(event_callback(mention))).status_code == 200
    [call] = await slack_standin.wait_for_calls("chat.postMessage")
    assert "<https://evil" not in call.args["text"] and "&lt;https://evil.example|click&gt;" in call.args["text"]
