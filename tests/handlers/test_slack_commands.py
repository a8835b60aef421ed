"""``/recon`` through the real app: which subcommand's listener answers, what it
queues, what the person who typed it sees."""

from __future__ import annotations

import httpx
import pytest

from bot.slack.commands import USAGE
from tests.handlers.conftest import HandlerApp
from tests.standins.slack_requests import slash_command

CHANNEL = "C0INCIDENT"
INCIDENT = "INC-20261120-abc123"


def answer(r: httpx.Response) -> str:
    """The ack's text (bolt answers an ack with text as text/plain)."""
    assert r.status_code == 200, r.text
    if r.headers.get("content-type", "").startswith("application/json"):
        return str(r.json().get("text", ""))
    return r.text


async def test_a_correlation_id_queues_one_diagnosis(app: HandlerApp) -> None:
    r = await app.slack(slash_command(text="corr-77 36h", channel_id=CHANNEL, user_id="U7"))
    assert answer(r).startswith(":mag: Diagnosing correlation_id corr-77 over the last 36h.")
    [job] = await app.jobs()
    assert (job["kind"], job["dedup_key"], job["status"]) == ("diagnose", "diagnose:correlation_id:corr-77", "queued")
    assert job["payload"]["channel"] == CHANNEL and job["payload"]["user"] == "U7"


async def test_the_same_subject_again_is_the_queued_job(app: HandlerApp) -> None:
    await app.slack(slash_command(text="app inst-1", channel_id=CHANNEL))
    r = await app.slack(slash_command(text="app inst-1 7d", channel_id=CHANNEL))
    assert answer(r) == (":hourglass_flowing_sand: A diagnosis of app_instance_id inst-1 is already queued; "
                         "its thread will appear shortly.")
    assert [j["dedup_key"] for j in await app.jobs()] == ["diagnose:app_instance_id:inst-1"]


async def test_verify_queues_a_verification(app: HandlerApp) -> None:
    r = await app.slack(slash_command(text=f"verify {INCIDENT}", channel_id=CHANNEL))
    assert answer(r).startswith(f":mag: Verifying {INCIDENT}:")
    [job] = await app.jobs()
    assert (job["kind"], job["dedup_key"]) == ("verify", f"verify:{INCIDENT}")
    r = await app.slack(slash_command(text=f"verify {INCIDENT}", channel_id=CHANNEL))
    assert answer(r) == f":hourglass_flowing_sand: A verification of {INCIDENT} is already running."
    assert len(await app.jobs()) == 1


async def test_freezes_and_unfreeze_answer_without_a_job(app: HandlerApp) -> None:
    r = await app.slack(slash_command(text="freezes"))
    assert answer(r) == ":sunny: No active freezes of manual customer-facing adjustments."
    r = await app.slack(slash_command(text=f"unfreeze {INCIDENT}"))
    assert answer(r) == f":warning: No incident {INCIDENT}."
    assert await app.jobs() == []


async def test_unfreeze_of_an_incident_without_a_freeze(app: HandlerApp) -> None:
    incident = await app.svc.store.create_incident(title="drift", origin="slack", correlation_id="corr-9")
    r = await app.slack(slash_command(text=f"unfreeze {incident.incident_id}"))
    assert answer(r) == f":sunny: Incident {incident.incident_id} has no active freeze."


@pytest.mark.parametrize("text", ["", "help", "--help", "?"])
async def test_help_is_the_usage(app: HandlerApp, text: str) -> None:
    assert answer(await app.slack(slash_command(text=text))) == USAGE
    assert await app.jobs() == []


@pytest.mark.parametrize(("text", "why"), [
    ("corr-1 48h extra", "too many words after the id"),
    ("a b c d", "too many words after /recon (4)"),
    ("freezes now", "`/recon freezes` takes nothing more"),
    ("verify INC-bogus", "`/recon verify` needs an incident id"),
    ("unfreeze", "`/recon unfreeze` needs an incident id"),
    ("app", "`/recon app` needs an app instance id"),
    ("<!channel>", ""),
])
async def test_text_that_does_not_parse_says_why_then_the_usage(app: HandlerApp, text: str, why: str) -> None:
    said = answer(await app.slack(slash_command(text=text)))
    assert said.startswith(":warning: ") and why in said and said.endswith(USAGE)
    assert await app.jobs() == []


async def test_unsigned_stale_and_malformed_requests_are_refused(app: HandlerApp) -> None:
    req = slash_command(text="corr-1")
    for bad in (req.resigned(bad_signature=True), req.resigned(stale=True), req.resigned(missing="signature")):
        r = await app.slack(bad)
        assert r.status_code == 401 and r.json() == {"error": "invalid request"}
    assert await app.jobs() == []
