"""Disputes as they arrive, end to end on the live platform: the "Reconcile with recon"
shortcut on a support message (its modal, its submission, the diagnosis in that
message's thread), a usage export shared in the incident's thread, and ``/recon org``."""

from __future__ import annotations

import io
import json
from typing import Any

import asyncpg
import httpx

from bot.export.sample import write_export
from bot.sources.billing import PostgresBillingReader
from tests.conftest import LoadedPlatform
from tests.e2e.slackbot import InProcessBot, jobs_settled
from tests.standins.slack import Message, SlackStandIn
from tests.standins.slack_requests import (
    event_callback,
    file_share,
    message,
    message_shortcut,
    post,
    slash_command,
    view_submission,
)

CHANNEL = "C0DISPUTES"


def replies_text(slack: SlackStandIn, parent_ts: str) -> str:
    return json.dumps([(m.text, m.blocks) for m in slack.thread(CHANNEL, parent_ts)[1:]])


def form_values(view: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The state Slack sends for a form left as recon pre-filled it."""
    out: dict[str, dict[str, Any]] = {}
    for b in view["blocks"]:
        el = b.get("element") or {}
        if el.get("type") == "plain_text_input":
            out[b["block_id"]] = {"value": {"type": "plain_text_input", "value": el.get("initial_value")}}
        elif el.get("type") == "datetimepicker":
            out[b["block_id"]] = {"value": {"type": "datetimepicker", "selected_date_time": el["initial_date_time"]}}
        elif el.get("type") == "checkboxes":
            out[b["block_id"]] = {"value": {"type": "checkboxes", "selected_options": el["initial_options"]}}
    return out


async def org_export(live: LoadedPlatform, org: str, *, break_line: bool = False) -> bytes:
    """The org's faithful export of the window's months (as the billing UI gives it), or one
    whose first line shows another usage source than the row has."""
    reader = PostgresBillingReader(live.billing_url, 15_000)
    try:
        out = io.StringIO(newline="")
        months = sorted({f"{d:%Y-%m}" for d in (live.platform.window().start, live.platform.now)})
        await write_export(reader, out, org, months)
    finally:
        await reader.aclose()
    text = out.getvalue()
    if break_line:
        head, first, rest = text.split("\r\n", 2)
        cols = head.split(",")
        fields = first.split(",")
        i = cols.index("usage_source")
        fields[i] = "allocation" if fields[i] != "allocation" else "app_runtime"
        text = "\r\n".join([head, ",".join(fields), rest])
    return text.encode()


def disputed_org(live: LoadedPlatform) -> str:
    cid = live.platform.disputed_correlation_id
    [org] = {u.org_id for u in live.platform.usage if u.correlation_id == cid}
    return org


async def test_the_shortcut_runs_the_diagnosis_in_the_messages_thread_with_its_export(
        bot: InProcessBot, http: httpx.AsyncClient, slack_standin: SlackStandIn, live: LoadedPlatform,
        store_url: str) -> None:
    cid = live.platform.disputed_correlation_id
    assert cid
    org = disputed_org(live)
    f = slack_standin.add_file("usage-export.csv", await org_export(live, org, break_line=True))
    text = f"Support: {org} says its GPU charges are wrong over the last 7 days. Ticket: correlation_id {cid}"
    support = slack_standin.add_message(CHANNEL, text, user="U0SUPPORT")
    msg = message(CHANNEL, text, user="U0SUPPORT", ts=support.ts)
    msg["files"] = [f.to_api()]
    r = await post(http, f"{bot.url}/slack/events",
                   message_shortcut("recon_reconcile", msg, trigger_id=slack_standin.trigger(), channel_id=CHANNEL))
    assert r.status_code == 200
    [update] = await slack_standin.wait_for_calls("views.update")
    view = update.response["view"]
    r = await post(http, f"{bot.url}/slack/events", view_submission(view, form_values(view), user_id="U0SUPPORT"))
    assert r.status_code == 200 and r.text == ""
    [job] = await jobs_settled(store_url, 1, timeout=60)
    assert job["status"] == "done", slack_standin.dump()
    thread = slack_standin.thread(CHANNEL, support.ts)
    assert len(thread) > 7 and all(m.thread_ts == support.ts for m in thread[1:])
    said = replies_text(slack_standin, support.ts)
    assert "Usage export" in said and "usage-export.csv" in said and "export_mismatch" in said
    anchor: Message = thread[1]
    assert anchor.history and "Drift found" in json.dumps(anchor.blocks)  # updated with the verdict
    conn = await asyncpg.connect(store_url)
    try:
        inc = await conn.fetchrow("select incident_id, correlation_id, slack_thread_ts from incidents")
        ev = await conn.fetchrow("select request, params from evidence where kind = 'export'")
    finally:
        await conn.close()
    assert (inc["correlation_id"], inc["slack_thread_ts"]) == (cid, support.ts)
    assert ev is not None and "usage-export.csv" in ev["request"]
    params = json.loads(ev["params"]) if isinstance(ev["params"], str) else ev["params"]
    assert len(params["sha256"]) == 64 and params["lines"] > 0 and params["months"]
    # downloaded with the bot token
    [dl] = slack_standin.calls_to("file_download")
    assert dl.token == "xoxb-recon-test-token" and dl.response == "text/csv"


async def _incident_thread(bot: InProcessBot, http: httpx.AsyncClient, slack: SlackStandIn, store_url: str,
                           org: str) -> str:
    r = await post(http, f"{bot.url}/slack/events", slash_command(text=f"org {org}", channel_id=CHANNEL))
    assert r.status_code == 200 and "Diagnosing org" in r.text
    [job] = await jobs_settled(store_url, 1, timeout=60)
    assert job["status"] == "done", slack.dump()
    return slack.messages(CHANNEL)[0].ts


async def test_recon_org_then_a_good_and_a_bad_export_in_its_thread(
        bot: InProcessBot, http: httpx.AsyncClient, slack_standin: SlackStandIn, live: LoadedPlatform,
        store_url: str) -> None:
    org = disputed_org(live)
    parent = await _incident_thread(bot, http, slack_standin, store_url, org)
    before = len(slack_standin.thread(CHANNEL, parent))
    assert "Usage export" not in replies_text(slack_standin, parent)
    good = slack_standin.add_file("nov.csv", await org_export(live, org))
    await post(http, f"{bot.url}/slack/events",
               event_callback(file_share(CHANNEL, [good.to_api()], thread_ts=parent, user="U0SUPPORT")))
    jobs = await jobs_settled(store_url, 2, timeout=60)
    assert [j["status"] for j in jobs] == ["done", "done"], slack_standin.dump()
    said = replies_text(slack_standin, parent)
    assert "Usage export" in said and "nov.csv" in said and "faithful" in said
    assert len(slack_standin.thread(CHANNEL, parent)) > before + 6
    # a malformed export: a reply naming its line and column, and no run
    bad = slack_standin.add_file("broken.csv", (await org_export(live, org)).replace(b"USD", b"usd", 1))
    await post(http, f"{bot.url}/slack/events", event_callback(file_share(CHANNEL, [bad.to_api()], thread_ts=parent)))
    await jobs_settled(store_url, 3, timeout=60)
    last = slack_standin.thread(CHANNEL, parent)[-1]
    assert "broken.csv" in last.text and "line 2, column currency" in last.text, last.text
    conn = await asyncpg.connect(store_url)
    try:
        runs = await conn.fetchval("select count(*) from diagnosis_runs")
    finally:
        await conn.close()
    assert runs == 2


async def test_recon_org_of_an_unknown_org_says_so(
        bot: InProcessBot, http: httpx.AsyncClient, slack_standin: SlackStandIn, store_url: str) -> None:
    r = await post(http, f"{bot.url}/slack/events", slash_command(text="org org-nobody", channel_id=CHANNEL))
    assert r.status_code == 200
    await jobs_settled(store_url, 1, timeout=60)
    [msg] = slack_standin.messages(CHANNEL)
    assert "knows no org `org-nobody`" in msg.text
    conn = await asyncpg.connect(store_url)
    try:
        assert await conn.fetchval("select count(*) from incidents") == 0
    finally:
        await conn.close()


async def test_recon_org_with_no_instance_in_the_window_is_a_clean_answer(
        bot: InProcessBot, http: httpx.AsyncClient, slack_standin: SlackStandIn, live: LoadedPlatform,
        store_url: str) -> None:
    org = disputed_org(live)
    r = await post(http, f"{bot.url}/slack/events",
                   slash_command(text=f"org {org} project prj-none", channel_id=CHANNEL))
    assert r.status_code == 200
    [job] = await jobs_settled(store_url, 1, timeout=60)
    assert job["status"] == "done", slack_standin.dump()
    [parent] = slack_standin.messages(CHANNEL)
    shown = json.dumps(parent.blocks)
    assert "Drift found" not in shown and "failed" not in parent.text.lower(), shown
    conn = await asyncpg.connect(store_url)
    try:
        run = await conn.fetchrow("select status, result from diagnosis_runs")
    finally:
        await conn.close()
    result = json.loads(run["result"]) if isinstance(run["result"], str) else run["result"]
    assert run["status"] == "done" and result["findings"] == [] and result["identifiers"]["app_instance_ids"] == []
