"""The reconcile shortcuts, their modal and CSV shares through the real app (no worker):
the modal opened first and then filled, what it is pre-filled with, what a submission
queues or shows as errors, which shared files become jobs."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from bot.errors import BadInput
from bot.slack.modal import Origin, seal, unseal
from tests.handlers.conftest import HandlerApp
from tests.standins.slack import SlackStandIn, View
from tests.standins.slack_requests import (
    event_callback,
    file_share,
    global_shortcut,
    message,
    message_shortcut,
    view_submission,
)

CHANNEL = "C0DISPUTES"
DISPUTE = ("Customer org-acme disputes its November 2026 app-runtime charges; the ticket names "
           "correlation_id: corr-77a and corr-77b.")
ATTACHMENTS = [{"fallback": "billing ticket", "fields": [{"title": "app_instance_id", "value": "ai-acme-3"}]}]
BLOCKS = [{"type": "section", "text": {"type": "mrkdwn", "text": "project <https://x.example/p|prj-acme-web>"}}]


def dispute(slack: SlackStandIn, *files: dict[str, Any]) -> dict[str, Any]:
    msg = message(CHANNEL, DISPUTE, user="U0SUPPORT", attachments=ATTACHMENTS, blocks=BLOCKS)
    slack.add_message(CHANNEL, DISPUTE, user="U0SUPPORT", ts=msg["ts"])
    if files:
        msg["files"] = list(files)
    return msg


def web_calls(slack: SlackStandIn) -> list[str]:
    """The Web API calls made, but bolt's own ``auth.test`` (once per process, before any listener)."""
    return [c.method for c in slack.calls if c.method != "auth.test"]


def text(v: str) -> dict[str, Any]:
    return {"value": {"type": "plain_text_input", "value": v}}


def when(t: datetime) -> dict[str, Any]:
    return {"value": {"type": "datetimepicker", "selected_date_time": int(t.timestamp())}}


def form(view: View, **values: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The form's state as Slack sends it: the pre-filled values, then ``values``."""
    out: dict[str, dict[str, Any]] = {}
    for b in view.view["blocks"]:
        el = b.get("element") or {}
        if b["type"] != "input":
            continue
        if el["type"] == "plain_text_input":
            out[b["block_id"]] = text(el.get("initial_value", ""))
        elif el["type"] == "datetimepicker":
            out[b["block_id"]] = {"value": {"type": "datetimepicker", "selected_date_time": el["initial_date_time"]}}
        elif el["type"] == "checkboxes":
            out[b["block_id"]] = {"value": {"type": "checkboxes", "selected_options": el.get("initial_options", [])}}
        elif el["type"] == "conversations_select":
            out[b["block_id"]] = {"value": {"type": "conversations_select", "selected_conversation": None}}
    return out | values


async def open_modal(app: HandlerApp, slack: SlackStandIn, msg: dict[str, Any] | None) -> View:
    req = (message_shortcut("recon_reconcile", msg, trigger_id=slack.trigger(), channel_id=CHANNEL) if msg
           else global_shortcut("recon_open", trigger_id=slack.trigger()))
    r = await app.slack(req)
    assert r.status_code == 200 and r.text == ""
    await slack.wait_for_calls("views.update")
    [view] = slack.views.values()
    return view


def errors(r: httpx.Response) -> dict[str, str]:
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["response_action"] == "errors"
    return dict(body["errors"])


async def test_the_modal_opens_first_and_is_filled_while_the_file_is_read(
        app: HandlerApp, slack_standin: SlackStandIn) -> None:
    f = slack_standin.add_file("usage-2026-11.csv", b"org_id\n")
    msg = dispute(slack_standin, f.to_api())
    gate = slack_standin.hold("files.info")
    r = await app.slack(message_shortcut("recon_reconcile", msg, trigger_id=slack_standin.trigger(),
                                         channel_id=CHANNEL))
    assert r.status_code == 200
    # the pre-fill's Web API call waits; the modal is already open, with the loading view
    await slack_standin.wait_for(lambda _: "files.info" in slack_standin.held)
    assert web_calls(slack_standin) == ["views.open"]
    [opened] = slack_standin.calls_to("views.open")
    assert opened.ok and "Reading the message" in json.dumps(opened.args["view"])
    gate.set()
    [update] = await slack_standin.wait_for_calls("views.update")
    assert update.ok and update.args["view_id"] == opened.response["view"]["id"]
    assert update.args["hash"] == opened.response["view"]["hash"]
    assert web_calls(slack_standin) == ["views.open", "files.info", "views.update"]


async def test_the_form_is_prefilled_from_text_attachments_blocks_and_the_csv(
        app: HandlerApp, slack_standin: SlackStandIn) -> None:
    f = slack_standin.add_file("usage-2026-11.csv", b"org_id\n")
    msg = dispute(slack_standin, f.to_api(), slack_standin.add_file("notes.pdf", b"%PDF", mimetype="application/pdf",
                                                                      filetype="pdf").to_api())
    view = await open_modal(app, slack_standin, msg)
    initial = {b["block_id"]: b["element"].get("initial_value") for b in view.view["blocks"]
               if b["type"] == "input" and b["element"]["type"] == "plain_text_input"}
    assert initial == {"correlation_id": "corr-77a", "app_instance_id": "ai-acme-3", "org_id": "org-acme",
                       "project_id": "prj-acme-web"}
    assert "corr-77b" in view.block("correlation_id")["hint"]["text"]  # type: ignore[index]
    start = view.block("window_start")["element"]["initial_date_time"]  # type: ignore[index]
    assert datetime.fromtimestamp(start, UTC) == datetime(2026, 11, 1, tzinfo=UTC)
    export = view.block("export")["element"]  # type: ignore[index]
    assert export["initial_options"][0]["value"] == f.id and "usage-2026-11.csv" in json.dumps(export)
    assert view.view["submit"]["text"] == "Diagnose" and len(view.view["title"]["text"]) <= 24


async def test_a_submission_queues_a_job_for_the_messages_thread(app: HandlerApp, slack_standin: SlackStandIn) -> None:
    f = slack_standin.add_file("usage-2026-11.csv", b"org_id\n")
    msg = dispute(slack_standin, f.to_api())
    view = await open_modal(app, slack_standin, msg)
    r = await app.slack(view_submission(view.to_api(), form(view), user_id="U0SUPPORT"))
    assert r.status_code == 200 and r.text == ""  # the modal closes
    [job] = await app.jobs()
    p = job["payload"]
    assert (job["kind"], job["dedup_key"]) == ("reconcile", f"reconcile:{CHANNEL}:{msg['ts']}:correlation_id:corr-77a")
    assert (p["channel"], p["thread_ts"], p["user"]) == (CHANNEL, msg["ts"], "U0SUPPORT")
    assert p["subject"]["correlation_id"] == "corr-77a" and p["subject"]["app_instance_id"] == "ai-acme-3"
    assert p["export"] == {"file_id": f.id, "name": "usage-2026-11.csv"}
    assert p["window_start"].startswith("2026-11-01")
    # the same request again while it is queued: the modal says so, no second job
    r = await app.slack(view_submission(view.to_api(), form(view)))
    assert r.json()["response_action"] == "update" and "already running" in json.dumps(r.json()["view"])
    assert len(await app.jobs()) == 1


async def test_problems_are_shown_in_the_modal_on_their_block(app: HandlerApp, slack_standin: SlackStandIn) -> None:
    view = await open_modal(app, slack_standin, dispute(slack_standin))
    empty = {k: text("") for k in ("correlation_id", "app_instance_id", "org_id", "project_id")}
    assert list(errors(await app.slack(view_submission(view.to_api(), form(view, **empty))))) == ["correlation_id"]
    bad = form(view, correlation_id=text('x"} |= "'), app_instance_id=text("a" * 129))
    assert set(errors(await app.slack(view_submission(view.to_api(), bad)))) == {"correlation_id", "app_instance_id"}
    only_project = form(view, **(empty | {"project_id": text("prj-acme-web")}))
    assert "org" in errors(await app.slack(view_submission(view.to_api(), only_project)))["project_id"]
    now = datetime.now(UTC)
    too_long = form(view, window_start=when(now - timedelta(days=120)), window_end=when(now))
    assert "at most 90" in errors(await app.slack(view_submission(view.to_api(), too_long)))["window_start"]
    backwards = form(view, window_start=when(now - timedelta(days=1)), window_end=when(now - timedelta(days=2)))
    assert "window_start" in errors(await app.slack(view_submission(view.to_api(), backwards)))
    assert await app.jobs() == []


async def test_altered_private_metadata_is_refused(app: HandlerApp, slack_standin: SlackStandIn) -> None:
    msg = dispute(slack_standin)
    view = await open_modal(app, slack_standin, msg)
    sealed = view.view["private_metadata"]
    assert unseal_fails(sealed, b"not-the-key" * 3)
    forged = {**view.to_api(), "private_metadata": sealed.split(".")[0] + ".AAAA"}
    assert "open the form again" in errors(await app.slack(view_submission(forged, form(view))))["correlation_id"]
    elsewhere = seal(Origin("message", "C0ELSEWHERE", msg["ts"]), b"k" * 32)  # sealed with another key
    assert errors(await app.slack(view_submission({**view.to_api(), "private_metadata": elsewhere}, form(view))))
    assert await app.jobs() == []


def unseal_fails(text: str, key: bytes) -> bool:
    try:
        unseal(text, key)
    except BadInput:
        return True
    return False


async def test_the_global_shortcut_needs_a_channel(app: HandlerApp, slack_standin: SlackStandIn) -> None:
    view = await open_modal(app, slack_standin, None)
    picker = view.block("channel")
    assert picker is not None and picker["element"]["type"] == "conversations_select"
    values = form(view, correlation_id=text("corr-9"))
    assert "channel" in errors(await app.slack(view_submission(view.to_api(), values)))
    values["channel"] = {"value": {"type": "conversations_select", "selected_conversation": "C0PICKED"}}
    r = await app.slack(view_submission(view.to_api(), values))
    assert r.status_code == 200 and r.text == ""
    [job] = await app.jobs()
    assert (job["payload"]["channel"], job["payload"]["thread_ts"]) == ("C0PICKED", None)
    assert job["payload"]["export"] is None


async def test_an_expired_trigger_opens_nothing(app: HandlerApp, slack_standin: SlackStandIn) -> None:
    msg = dispute(slack_standin)
    r = await app.slack(message_shortcut("recon_reconcile", msg, trigger_id=slack_standin.trigger(issued_ago_s=4),
                                         channel_id=CHANNEL))
    assert r.status_code == 200
    [call] = await slack_standin.wait_for_calls("views.open")
    assert call.error == "expired_trigger_id"
    assert slack_standin.calls_to("views.update") == [] and slack_standin.calls_to("files.info") == []


# ---------------------------------------------------------------- CSV shared in a thread


async def incident_thread(app: HandlerApp) -> tuple[str, str]:
    incident = await app.svc.store.create_incident(title="drift", origin="slack", org_id="org-acme")
    parent = "1700000100.000100"
    await app.svc.store.set_incident_thread(incident.incident_id, CHANNEL, parent)
    return incident.incident_id, parent


async def test_a_csv_in_an_incident_thread_queues_one_job(app: HandlerApp, slack_standin: SlackStandIn) -> None:
    incident_id, parent = await incident_thread(app)
    f = slack_standin.add_file("export.csv", b"x", mimetype="text/plain", filetype="text")  # a .csv by its name
    req = event_callback(file_share(CHANNEL, [f.to_api()], thread_ts=parent, user="U0SUPPORT"))
    assert (await app.slack(req)).status_code == 200
    await app.next_queued()
    assert (await app.slack(req.retried(1))).status_code == 200  # Slack's redelivery
    [job] = await app.jobs()
    p = job["payload"]
    assert (job["kind"], job["dedup_key"]) == ("reconcile", f"reconcile:file:{f.id}")
    assert (p["incident_id"], p["channel"], p["thread_ts"], p["export"]["file_id"]) == (incident_id, CHANNEL,
                                                                                      parent, f.id)


async def test_other_files_and_other_threads_are_left_alone(app: HandlerApp, slack_standin: SlackStandIn) -> None:
    _, parent = await incident_thread(app)
    pdf = slack_standin.add_file("report.pdf", b"%PDF", mimetype="application/pdf", filetype="pdf")
    csv = slack_standin.add_file("usage.csv", b"x")
    for ev in (file_share(CHANNEL, [pdf.to_api()], thread_ts=parent),  # not a CSV
               file_share(CHANNEL, [csv.to_api()], thread_ts="1700000999.000100"),  # no incident's thread
               file_share(CHANNEL, [csv.to_api()])):  # not in a thread
        assert (await app.slack(event_callback(ev))).status_code == 200
    # then one that does queue: only it has a job
    await app.slack(event_callback(file_share(CHANNEL, [csv.to_api()], thread_ts=parent)))
    await app.next_queued()
    assert [j["dedup_key"] for j in await app.jobs()] == [f"reconcile:file:{csv.id}"]
