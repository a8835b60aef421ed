"""Corrections proposed by a diagnosis, decided like a freeze (quorum, retraction,
expiry, supersession) through signed Slack events, sealed on approval, uploaded as a CSV
through Slack's two-step upload, byte-identical to ``recon corrections --format csv``,
and verifiable from the stored rows."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import UTC, datetime

import asyncpg
import httpx
import pytest

from bot.diagnosis.corrections import batch_digest
from bot.diagnosis.model import Correction, Diagnosis, Subject, WindowOut
from bot.store.corrections import CorrectionStore
from bot.store.store import Store
from tests.conftest import LoadedPlatform
from tests.e2e.slackbot import bot_in_process
from tests.e2e.test_approval_hardening import flow_on
from tests.e2e.test_approvals import (
    APPROVER,
    CHANNEL,
    MEMBER,
    SECOND,
    audit,
    env_for,
    react,
)
from tests.standins.slack import Message, SlackStandIn
from tests.standins.slack_requests import post, slash_command

HEADER = "Approve the proposed ledger corrections?"


async def corrections_prompt(bot: object, http: httpx.AsyncClient, slack: SlackStandIn,
                             live: LoadedPlatform) -> Message:
    slack.usergroups["S0APPROVERS"] = [MEMBER]
    cid = live.platform.disputed_correlation_id
    assert cid
    await post(http, f"{bot.url}/slack/events", slash_command(text=cid, channel_id=CHANNEL))  # type: ignore[attr-defined]

    def found() -> Message | None:
        for m in slack.messages(CHANNEL):
            for r in slack.thread(CHANNEL, m.ts)[1:]:
                if HEADER in json.dumps(r.blocks):
                    return r
        return None

    await slack.wait_for(lambda _: found() is not None, timeout=30)
    await slack.wait_for_calls("reactions.add", 4)  # both prompts' messages are recorded by then
    m = found()
    assert m is not None
    return m


def state(slack: SlackStandIn, ts: str) -> str:
    m = slack.message(CHANNEL, ts)
    assert m is not None
    return json.dumps(m.blocks)


def recon_corrections(store_url: str, *args: str) -> subprocess.CompletedProcess[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RECON_", "SLACK_", "LOKI_", "TEMPO_"))}
    env["DATABASE_URL"] = store_url
    return subprocess.run([sys.executable, "-m", "bot", "corrections", *args], env=env, capture_output=True,
                          timeout=120, check=False)


async def test_quorum_retraction_seal_upload_and_cli(
    live: LoadedPlatform, store_url: str, slack_standin: SlackStandIn, http: httpx.AsyncClient,
) -> None:
    async with bot_in_process(env_for(live, store_url, slack_standin, RECON_APPROVAL_QUORUM="2")) as bot:
        prompt = await corrections_prompt(bot, http, slack_standin, live)
        text = state(slack_standin, prompt.ts)
        assert "ledger correction(s) proposed" in text and "never applies" in text and "totalling" in text
        # the full list: a working link to the report, opened at its corrections section
        assert re.search(r"<https?://[^|<>]+/incidents/INC-[^|<>]+#corrections\|the full list", text), text
        await react(http, bot, APPROVER, "white_check_mark", prompt.ts)
        await slack_standin.wait_for(lambda _: "approve 1/2" in state(slack_standin, prompt.ts))
        await react(http, bot, APPROVER, "white_check_mark", prompt.ts, removed=True)
        await slack_standin.wait_for(lambda _: "approve 0/2" in state(slack_standin, prompt.ts))
        await react(http, bot, MEMBER, "white_check_mark", prompt.ts)
        await slack_standin.wait_for(lambda _: "approve 1/2" in state(slack_standin, prompt.ts))
        await react(http, bot, SECOND, "white_check_mark", prompt.ts)
        await slack_standin.wait_for(lambda _: "files.completeUploadExternal" in {c.method for c in _}, timeout=15)
        assert "Approved" in state(slack_standin, prompt.ts)
    # the two-step upload: a URL for (filename, length), the bytes, then the share in the thread
    (f,) = slack_standin.files.values()
    assert f.content is not None and f.channel == CHANNEL and f.thread_ts == prompt.thread_ts
    step1 = slack_standin.calls_to("files.getUploadURLExternal")[0]
    assert int(step1.args["length"]) == len(f.content) and f.filename.endswith(".csv")
    conn = await asyncpg.connect(store_url)
    try:
        incident = await conn.fetchval("select incident_id from correction_batches")
        with pytest.raises(asyncpg.RestrictViolationError):
            await conn.execute("update correction_batch_rows set amount_minor = 0")
        with pytest.raises(asyncpg.RestrictViolationError):
            await conn.execute("delete from correction_batches")
    finally:
        await conn.close()
    out = recon_corrections(store_url, incident, "--format", "csv")
    assert out.returncode == 0, out.stderr
    assert out.stdout == f.content  # byte for byte
    lines = f.content.decode().splitlines()
    assert lines[0].startswith("# ") and "never applies" in lines[0] and f"{MEMBER} (approve)" in lines[0]
    assert lines[1] == ("action,org_id,project_id,usage_record_id,reverses_entry_id,amount_minor,currency,"
                        "correlation_id,check,reason,incident_id,batch_digest")
    doc = json.loads(recon_corrections(store_url, incident, "--format", "json").stdout)
    assert doc["status"] == "approved" and doc["approved_by"] == sorted([MEMBER, SECOND])
    assert all(line.endswith(doc["digest"]) for line in lines[2:]) and len(lines) - 2 == len(doc["corrections"])
    verified = recon_corrections(store_url, incident, "--verify")
    assert verified.returncode == 0 and b"verified" in verified.stdout
    assert recon_corrections(store_url, "INC-20990101-zzzzzz").returncode == 2
    kinds = [t for t, _ in await audit(store_url)]
    assert kinds.count("decision") == 1 and "retract" in kinds  # this prompt; the freeze prompt stays open


async def test_an_expired_corrections_prompt_seals_nothing(
    live: LoadedPlatform, store_url: str, slack_standin: SlackStandIn, http: httpx.AsyncClient,
) -> None:
    async with bot_in_process(env_for(live, store_url, slack_standin, RECON_APPROVAL_EXPIRY_H="0.000001")) as bot:
        prompt = await corrections_prompt(bot, http, slack_standin, live)
        await react(http, bot, APPROVER, "white_check_mark", prompt.ts)
        await slack_standin.wait_for(lambda _: "Expired" in state(slack_standin, prompt.ts))
    conn = await asyncpg.connect(store_url)
    try:
        assert await conn.fetchval("select count(*) from correction_batches") == 0
    finally:
        await conn.close()
    assert not slack_standin.files


def diagnosis(amount: int) -> Diagnosis:
    now = datetime(2026, 11, 20, tzinfo=UTC)
    fix = Correction(action="reverse_debit", org_id="org-1", project_id="prj-1", reverses_entry_id="le-1",
                     amount_minor=amount, currency="EUR", reason="duplicate", check="duplicate_charge")
    return Diagnosis(subject=Subject(correlation_id="corr-fix"), window=WindowOut(start=now, end=now),
                     corrections=[fix])


async def test_a_newer_diagnosis_supersedes_an_open_prompt_and_an_approved_batch_stays(
    store: Store, slack_standin: SlackStandIn,
) -> None:
    flow = flow_on(store, slack_standin)
    inc, _ = await store.get_or_create_incident(title="t", origin="slack", correlation_id="corr-fix")
    parent = slack_standin.add_message(CHANNEL, "diagnosis", user="U0ONCALL")
    first = await flow.propose_corrections(inc.incident_id, diagnosis(500), CHANNEL, parent.ts)
    same = await flow.propose_corrections(inc.incident_id, diagnosis(500), CHANNEL, parent.ts)
    assert first is not None and same is not None and same.prompt_id == first.prompt_id
    second = await flow.propose_corrections(inc.incident_id, diagnosis(700), CHANNEL, parent.ts)
    assert second is not None and second.prompt_id != first.prompt_id
    old = await flow.approvals.get(first.prompt_id)
    assert old is not None and old.status == "superseded"
    assert "Superseded" in state(slack_standin, old.message_ts or "")
    assert any("superseded" in m.text for m in slack_standin.thread(CHANNEL, parent.ts))
    res = await flow.on_vote(old, user=APPROVER, vote="approve", via="reaction", dedup_key="late")
    assert res.outcome == "closed"  # votes on the old prompt no longer count
    res = await flow.on_vote(second, user=APPROVER, vote="approve", via="reaction", dedup_key="v2")
    assert res.decided == "approved" and res.batch_id is not None
    # an approved batch is never changed: the next diagnosis with drift proposes a new prompt
    third = await flow.propose_corrections(inc.incident_id, diagnosis(700), CHANNEL, parent.ts)
    assert third is not None and third.prompt_id != second.prompt_id and third.status == "open"
    cs = CorrectionStore(store.pool)
    (batch,) = await cs.batches_of(inc.incident_id)
    rows = await cs.rows(batch.batch_id)
    assert batch.approved_by == [APPROVER] and batch.votes == {APPROVER: "approve"}
    assert batch.digest == batch_digest(inc.incident_id, None, rows) == second.scope["digest"]
    assert await cs.verify(batch)
    async with store.pool.acquire() as conn:  # someone bypasses the triggers: the digest no longer holds
        await conn.execute("alter table correction_batch_rows disable trigger correction_batch_rows_sealed")
        await conn.execute("update correction_batch_rows set amount_minor = 1")
    assert not await cs.verify(batch)
