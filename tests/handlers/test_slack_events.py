"""Slack events through the real app: mentions, reactions (the pin), alert posts in
watched channels. Their listeners run after the ack: a test awaits what they do (a job
queued, a Web API call to the stand-in)."""

from __future__ import annotations

from bot.slack.commands import USAGE
from tests.handlers.conftest import WATCHED, HandlerApp
from tests.standins.slack import BOT_USER_ID, SlackStandIn
from tests.standins.slack_requests import app_mention, event_callback, message, reaction_added, reaction_removed

CHANNEL = "C0INCIDENT"


async def test_a_mention_with_an_id_queues_a_diagnosis(app: HandlerApp) -> None:
    r = await app.slack(event_callback(app_mention("U1", f"<@{BOT_USER_ID}> corr-5 2h", CHANNEL)))
    assert r.status_code == 200
    await app.next_queued()
    [job] = await app.jobs()
    assert (job["kind"], job["dedup_key"]) == ("diagnose", "diagnose:correlation_id:corr-5")
    assert job["payload"]["channel"] == CHANNEL and job["payload"]["user"] == "U1"


async def test_a_mention_without_an_id_is_answered_with_the_usage(app: HandlerApp,
                                                                  slack_standin: SlackStandIn) -> None:
    mention = app_mention("U1", f"<@{BOT_USER_ID}> help", CHANNEL)
    assert (await app.slack(event_callback(mention))).status_code == 200
    [call] = await slack_standin.wait_for_calls("chat.postMessage")
    assert call.args["channel"] == CHANNEL and call.args["thread_ts"] == mention["ts"]
    assert call.args["text"] == USAGE
    assert await app.jobs() == []


async def test_other_reactions_are_acked_not_left_unhandled(app: HandlerApp) -> None:
    """No listener of its own: still 200 (bolt answers an unhandled event 404, and Slack
    would deliver it again)."""
    for event in (reaction_added("U1", "eyes", CHANNEL, "1700000000.000100"),
                  reaction_removed("U1", "eyes", CHANNEL, "1700000000.000100")):
        r = await app.slack(event_callback(event))
        assert r.status_code == 200, r.text


async def test_a_pinned_reply_joins_its_incident_timeline(app: HandlerApp, slack_standin: SlackStandIn) -> None:
    incident = await app.svc.store.create_incident(title="drift", origin="slack", correlation_id="corr-3")
    parent = slack_standin.add_message(CHANNEL, "Diagnosis of corr-3", bot_id="B0RECON")
    await app.svc.store.set_incident_thread(incident.incident_id, CHANNEL, parent.ts)
    reply = slack_standin.add_message(CHANNEL, "the ledger job was paused at 10:02", user="U2",
                                      thread_ts=parent.ts)
    r = await app.slack(event_callback(reaction_added("U3", "pushpin", CHANNEL, reply.ts, "U2")))
    assert r.status_code == 200
    [mark] = await slack_standin.wait_for_calls("reactions.add")
    assert (mark.args["channel"], mark.args["timestamp"], mark.args["name"]) == (CHANNEL, reply.ts, "bookmark")
    [event] = [e for e in await app.svc.store.timeline(incident.incident_id) if e.type == "pinned"]
    assert event.description == "the ledger job was paused at 10:02" and event.actor == "U3"
    assert await app.jobs() == []


async def test_an_alert_post_in_a_watched_channel_queues_its_triage(app: HandlerApp) -> None:
    post = message(WATCHED, "", bot_id="B0ALERTS", attachments=[{
        "title": "[FIRING:1] AppRuntimeMeteringDrift (correlation_id=corr-8 severity=page)",
        "color": "danger", "text": "metering drift"}])
    assert (await app.slack(event_callback(post))).status_code == 200
    await app.next_queued()
    [job] = await app.jobs()
    assert job["kind"] == "alert"
