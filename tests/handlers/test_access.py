"""Where and who may ask recon (RECON_ALLOWED_CHANNELS, RECON_USERS: /recon, mentions,
the reconcile shortcuts and their form, CSV shares) and which bots may post alerts
(RECON_ALERT_BOTS), through the real app with signed requests."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio

from bot.slack.access import CHANNEL_NOT_PICKABLE, CHANNEL_REFUSED, USER_REFUSED, USERS_UNREADABLE
from handlers.alerts import alert_post
from tests.handlers.conftest import WATCHED, HandlerApp, running_app
from tests.handlers.test_slack_commands import answer
from tests.handlers.test_slack_shortcuts import form
from tests.handlers.test_slack_shortcuts import text as text_input
from tests.standins.slack import BOT_USER_ID, SlackStandIn, View
from tests.standins.slack_requests import (
    SlackRequest,
    app_mention,
    event_callback,
    file_share,
    global_shortcut,
    message,
    message_shortcut,
    slash_command,
    view_submission,
)

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


# ---------------------------------------------------------------- the reconcile shortcuts and CSV shares


async def shortcut_modal(app: HandlerApp, slack: SlackStandIn, user: str, channel: str | None) -> View:
    """The modal a shortcut by ``user`` ends with: on a message in ``channel``, or global."""
    n = len(slack.calls_to("views.open")) + 1
    if channel is None:
        req = global_shortcut("recon_open", trigger_id=slack.trigger(), user_id=user)
    else:
        msg = message(channel, "org-acme disputes corr-7", user="U0SUPPORT")
        slack.add_message(channel, msg["text"], user="U0SUPPORT", ts=msg["ts"])
        req = message_shortcut("recon_reconcile", msg, trigger_id=slack.trigger(), channel_id=channel, user_id=user)
    assert (await app.slack(req)).status_code == 200
    await slack.wait_for_calls("views.update", count=n)  # after the n-th views.open
    return list(slack.views.values())[-1]


def refused_with(view: View, why: str) -> bool:
    """The modal says ``why`` and has nothing to submit."""
    return "submit" not in view.view and why in json.dumps(view.view)


async def test_a_shortcut_by_someone_else_opens_a_refusal_instead_of_the_form(
        guarded: HandlerApp, slack_standin: SlackStandIn) -> None:
    for channel in (INCIDENTS, None):
        view = await shortcut_modal(guarded, slack_standin, STRANGER, channel)
        assert refused_with(view, USER_REFUSED[:60]), channel
    assert slack_standin.calls_to("files.info") == [] and slack_standin.calls_to("conversations.replies") == []
    # an allowed person gets the form, in an allowed channel or from the global shortcut
    for user, channel in ((ALLOWED, INCIDENTS), (ON_CALL, None)):
        view = await shortcut_modal(guarded, slack_standin, user, channel)
        assert view.view["submit"]["text"] == "Diagnose" and view.block("correlation_id") is not None
    assert await guarded.jobs() == []


async def test_a_message_shortcut_in_another_channel_is_refused_even_for_an_allowed_person(
        guarded: HandlerApp, slack_standin: SlackStandIn) -> None:
    view = await shortcut_modal(guarded, slack_standin, ALLOWED, ELSEWHERE)
    assert refused_with(view, CHANNEL_REFUSED) and f"<#{INCIDENTS}>" in json.dumps(view.view)
    assert await guarded.jobs() == []


async def test_a_channel_picked_that_is_not_allowed_is_an_error_on_the_picker(
        guarded: HandlerApp, slack_standin: SlackStandIn) -> None:
    view = await shortcut_modal(guarded, slack_standin, ALLOWED, None)
    values = form(view, correlation_id=text_input("corr-9"))
    values["channel"] = {"value": {"type": "conversations_select", "selected_conversation": ELSEWHERE}}
    r = await guarded.slack(view_submission(view.to_api(), values, user_id=ALLOWED))
    assert r.json() == {"response_action": "errors", "errors": {"channel": CHANNEL_NOT_PICKABLE}}
    assert await guarded.jobs() == []
    values["channel"]["value"]["selected_conversation"] = INCIDENTS
    r = await guarded.slack(view_submission(view.to_api(), values, user_id=ALLOWED))
    assert r.status_code == 200 and r.text == ""
    [job] = await guarded.jobs()
    assert (job["kind"], job["payload"]["channel"], job["payload"]["user"]) == ("reconcile", INCIDENTS, ALLOWED)


async def test_a_form_submitted_by_someone_not_allowed_is_refused_in_the_modal(
        guarded: HandlerApp, slack_standin: SlackStandIn) -> None:
    view = await shortcut_modal(guarded, slack_standin, ALLOWED, INCIDENTS)
    r = await guarded.slack(view_submission(view.to_api(), form(view), user_id=STRANGER))
    body = r.json()
    assert body["response_action"] == "update" and refused_with(View("v", "h", body["view"], "t"), USER_REFUSED[:60])
    assert await guarded.jobs() == []
    r = await guarded.slack(view_submission(view.to_api(), form(view), user_id=ALLOWED))
    assert r.status_code == 200 and r.text == ""
    assert [j["payload"]["channel"] for j in await guarded.jobs()] == [INCIDENTS]


async def shared_csv(app: HandlerApp, slack: SlackStandIn, channel: str, user: str, n: int
                     ) -> tuple[SlackRequest, str]:
    """A CSV shared by ``user`` in the thread (returned) of a new incident in ``channel``."""
    incident = await app.svc.store.create_incident(title="drift", origin="slack", org_id=f"org-{n}")
    parent = f"17000001{n:02d}.000100"
    assert await app.svc.store.set_incident_thread(incident.incident_id, channel, parent)
    f = slack.add_file("usage.csv", b"org_id\n")
    return event_callback(file_share(channel, [f.to_api()], thread_ts=parent, user=user)), parent


async def test_a_csv_shared_by_someone_not_allowed_or_elsewhere_is_ignored_with_a_note(
        guarded: HandlerApp, slack_standin: SlackStandIn) -> None:
    refused = ((INCIDENTS, STRANGER, USER_REFUSED), (ELSEWHERE, ALLOWED, CHANNEL_REFUSED))
    for n, (channel, user, why) in enumerate(refused, start=1):
        req, parent = await shared_csv(guarded, slack_standin, channel, user, n)
        assert (await guarded.slack(req)).status_code == 200
        assert (await guarded.slack(req.retried(1))).status_code == 200  # Slack's redelivery: no second note
        call = (await slack_standin.wait_for_calls("chat.postEphemeral", count=n))[-1]
        assert (call.args["channel"], call.args["user"], call.args["thread_ts"]) == (channel, user, parent)
        assert call.args["text"].startswith(why) and "was not read" in call.args["text"]
    # an allowed person's CSV in an allowed channel is taken
    req, _ = await shared_csv(guarded, slack_standin, INCIDENTS, ON_CALL, 3)
    assert (await guarded.slack(req)).status_code == 200
    await guarded.next_queued()
    [job] = await guarded.jobs()
    assert (job["kind"], job["payload"]["channel"], job["payload"]["user"]) == ("reconcile", INCIDENTS, ON_CALL)
    assert len(slack_standin.calls_to("chat.postEphemeral")) == 2  # the redeliveries told nobody again


async def test_a_user_group_that_cannot_be_read_refuses_with_a_clear_answer(
        guarded: HandlerApp, slack_standin: SlackStandIn) -> None:
    slack_standin.error("usergroups.users.list", "request_timeout", times=None)  # not permanent
    r = await guarded.slack(slash_command(text="corr-1", channel_id=INCIDENTS, user_id=ON_CALL))
    assert r.json() == {"text": USERS_UNREADABLE, "response_type": "ephemeral"}
    view = await shortcut_modal(guarded, slack_standin, ON_CALL, None)
    assert refused_with(view, USERS_UNREADABLE[:60])
    # a person named in RECON_USERS needs no group
    assert answer(await guarded.slack(slash_command(text="corr-1", channel_id=INCIDENTS, user_id=ALLOWED))
                  ).startswith(":mag: Diagnosing")
