"""The stand-in's modals and files, driven by the real slack_sdk client: trigger_id
expiry and single use, views.update's hash, Slack's view checks, files.info and the
private download (bytes with the bot token, the HTML sign-in page without)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.errors import SourceError
from bot.export.fetch import download_slack_file
from tests.standins.slack import SlackStandIn

MODAL = {"type": "modal", "title": {"type": "plain_text", "text": "Reconcile with recon"},
         "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "Reading…"}}]}


def client(slack: SlackStandIn) -> AsyncWebClient:
    return AsyncWebClient(token="xoxb-test", base_url=slack.url)


async def error_of(call: Any) -> str:
    with pytest.raises(SlackApiError) as e:
        await call
    return str(e.value.response["error"])


async def test_a_trigger_is_good_once_and_for_three_seconds(slack_standin: SlackStandIn) -> None:
    c = client(slack_standin)
    tid = slack_standin.trigger()
    opened = (await c.views_open(trigger_id=tid, view=MODAL))["view"]
    assert opened["id"] in slack_standin.views and opened["hash"]
    assert await error_of(c.views_open(trigger_id=tid, view=MODAL)) == "exchanged_trigger_id"
    assert await error_of(c.views_open(trigger_id=slack_standin.trigger(issued_ago_s=3.5), view=MODAL)) == \
        "expired_trigger_id"
    assert await error_of(c.views_open(trigger_id="123.456.never-issued", view=MODAL)) == "invalid_trigger_id"


async def test_views_update_takes_the_current_hash_only(slack_standin: SlackStandIn) -> None:
    c = client(slack_standin)
    opened = (await c.views_open(trigger_id=slack_standin.trigger(), view=MODAL))["view"]
    form = {**MODAL, "submit": {"type": "plain_text", "text": "Go"},
            "blocks": [{"type": "input", "block_id": "x", "label": {"type": "plain_text", "text": "X"},
                        "element": {"type": "plain_text_input", "action_id": "value"}}]}
    updated = (await c.views_update(view_id=opened["id"], hash=opened["hash"], view=form))["view"]
    assert updated["hash"] != opened["hash"] and slack_standin.views[opened["id"]].view["blocks"][0]["block_id"] == "x"
    assert await error_of(c.views_update(view_id=opened["id"], hash=opened["hash"], view=form)) == "hash_conflict"
    assert await error_of(c.views_update(view_id="V0NOPE", view=form)) == "not_found"


@pytest.mark.parametrize("bad", [
    {**MODAL, "title": {"type": "plain_text", "text": "A title longer than twenty-four"}},
    {**MODAL, "blocks": [{"type": "input", "block_id": "x", "label": {"type": "plain_text", "text": "X"},
                          "element": {"type": "plain_text_input", "action_id": "v"}}]},  # inputs, no submit
    {**MODAL, "type": "home"},
])
async def test_views_are_checked_as_slack_does(slack_standin: SlackStandIn, bad: dict[str, Any]) -> None:
    c = client(slack_standin)
    assert await error_of(c.views_open(trigger_id=slack_standin.trigger(), view=bad)) == "invalid_arguments"


async def test_files_info_and_the_private_download(slack_standin: SlackStandIn) -> None:
    f = slack_standin.add_file("usage.csv", b"a,b\r\n1,2\r\n")
    c = client(slack_standin)
    info = (await c.files_info(file=f.id))["file"]
    assert (info["name"], info["size"], info["mimetype"]) == ("usage.csv", 10, "text/csv")
    assert await error_of(c.files_info(file="F0NOPE")) == "file_not_found"
    async with httpx.AsyncClient() as http:
        r = await http.get(info["url_private_download"], headers={"Authorization": "Bearer xoxb-test"})
        assert r.status_code == 200 and r.content == b"a,b\r\n1,2\r\n"
        r = await http.get(info["url_private_download"])  # no token: Slack's sign-in page, still 200
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        with pytest.raises(SourceError, match="files:read"):
            await download_slack_file(http, info["url_private_download"], "xoxp-not-a-bot", "usage.csv")
    assert [c.token for c in slack_standin.calls_to("file_download")] == ["xoxb-test", None, "xoxp-not-a-bot"]


async def test_hold_keeps_answers_until_released(slack_standin: SlackStandIn) -> None:
    gate = slack_standin.hold("files.info")
    f = slack_standin.add_file("usage.csv", b"x")
    task = asyncio.create_task(client(slack_standin).files_info(file=f.id))
    await slack_standin.wait_for(lambda _: slack_standin.held == ["files.info"])
    assert not task.done() and slack_standin.calls_to("files.info") == []
    gate.set()
    assert (await task)["file"]["id"] == f.id and slack_standin.held == []
