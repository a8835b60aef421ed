"""``/recon org <org_id> [project <project_id>] [since]`` through the real app: parsed,
queued as a diagnosis of the scope, or refused with the reason and the usage."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest

from bot.diagnosis.model import Subject
from bot.errors import BadInput
from bot.slack.commands import USAGE, parse
from tests.handlers.conftest import HandlerApp
from tests.standins.slack_requests import slash_command

CHANNEL = "C0DISPUTES"


def answer(r: httpx.Response) -> str:
    assert r.status_code == 200, r.text
    if r.headers.get("content-type", "").startswith("application/json"):
        return str(r.json().get("text", ""))
    return r.text


@pytest.mark.parametrize(("text", "subject", "since"), [
    ("org org-acme", Subject(org_id="org-acme"), timedelta(days=7)),
    ("ORG org-acme 48h", Subject(org_id="org-acme"), timedelta(hours=48)),
    ("org org-acme project prj-acme-web", Subject(org_id="org-acme", project_id="prj-acme-web"), timedelta(days=7)),
    ("org org-acme project prj-acme-web 30d", Subject(org_id="org-acme", project_id="prj-acme-web"),
     timedelta(days=30)),
])
def test_org_parses_to_a_scope(text: str, subject: Subject, since: timedelta) -> None:
    cmd = parse(text)
    assert (cmd.action, cmd.subject, cmd.since) == ("org", subject, since)


@pytest.mark.parametrize(("text", "why"), [
    ("org", "needs an org id"),
    ("org org-acme project", "needs a project id"),
    ("org org-acme 7d 8d", "too many words"),
    ("org org-acme project prj-1 7d extra", "too many words"),
    ('org x"}|line_format', "ids never contain"),
    ("org org-acme 200d", "90-day limit"),
])
def test_org_refusals_say_why(text: str, why: str) -> None:
    with pytest.raises(BadInput, match=why):
        parse(text)


async def test_org_queues_a_scope_diagnosis(app: HandlerApp) -> None:
    r = await app.slack(slash_command(text="org org-acme project prj-acme-web 48h", channel_id=CHANNEL, user_id="U7"))
    assert answer(r).startswith(":mag: Diagnosing org org-acme project prj-acme-web over the last 2d.")
    [job] = await app.jobs()
    assert (job["kind"], job["dedup_key"]) == ("diagnose", "diagnose:scope:org-acme:prj-acme-web")
    assert job["payload"]["subject"]["org_id"] == "org-acme" and job["payload"]["since_s"] == 48 * 3600


async def test_a_bad_org_gets_the_reason_and_the_usage(app: HandlerApp) -> None:
    text = answer(await app.slack(slash_command(text="org", channel_id=CHANNEL)))
    assert "needs an org id" in text and text.endswith(USAGE)
    assert "/recon org <org_id>" in USAGE
    assert await app.jobs() == []
