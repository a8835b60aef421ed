"""The report's Corrections section: a sealed batch (its run, approvers, votes, digest and
rows) on the HTML page and in the Markdown export, the latest diagnosis's proposals marked
"proposed, not approved" while no batch from its run is sealed, and hostile text escaped."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from bot.diagnosis.corrections import batch_digest, proposal_rows
from bot.report.corrections import report_corrections
from bot.report.data import load_report
from bot.report.render import render_html, render_markdown
from bot.store.corrections import seal
from bot.store.store import Store
from tests.constants import NOW
from tests.report.conftest import Recorded

HOSTILE = '<script>alert("x")</script> & <b>bold</b> | pipe'


async def seal_batch(store: Store, recorded: Recorded, rows: list[dict[str, Any]]) -> tuple[int, str]:
    """An approved corrections prompt of ``rows`` sealed as the approval flow seals it:
    returns (batch_id, digest)."""
    digest = batch_digest(recorded.incident_id, recorded.run_id, rows)
    scope = {"incident_id": recorded.incident_id, "run_id": recorded.run_id, "digest": digest, "corrections": rows}
    async with store.pool.acquire() as conn, conn.transaction():
        prompt_id = await conn.fetchval(
            "INSERT INTO approval_prompts (incident_id, kind, channel, thread_ts, message_ts, scope, reason, quorum,"
            " status, created_at, expires_at, decided_at, decided_by)"
            " VALUES ($1, 'corrections', 'C0INCIDENT', '1763640000.000100', '1763640000.000300', $2,"
            " 'approve the proposed ledger corrections', 2, 'approved', $3, $4, $5, ARRAY['U0ALICE', 'U0BOB'])"
            " RETURNING prompt_id",
            recorded.incident_id, scope, NOW + timedelta(minutes=20), NOW + timedelta(hours=4),
            NOW + timedelta(minutes=25))
        batch_id = await seal(conn, incident_id=recorded.incident_id, prompt_id=int(prompt_id), scope=scope,
                              approved_by=["U0ALICE", "U0BOB"], votes={"U0BOB": "approve", "U0ALICE": "approve"})
    return batch_id, digest


def hostile_rows(recorded: Recorded) -> list[dict[str, Any]]:
    rows = proposal_rows([c.model_dump() for c in recorded.diagnosis.corrections])
    assert len(rows) >= 2  # the demo's disputed call has corrections to propose
    rows[0]["reason"] = HOSTILE
    return rows


async def test_a_sealed_batch_shows_on_the_page_and_in_the_export(store: Store, recorded: Recorded) -> None:
    rows = hostile_rows(recorded)
    batch_id, digest = await seal_batch(store, recorded, rows)
    r = await load_report(store.pool, recorded.incident_id)
    assert r is not None
    (b,) = r.corrections.batches
    assert (b.batch_id, b.run_id, b.digest, b.verified) == (batch_id, recorded.run_id, digest, True)
    assert list(b.rows) == rows and b.approved_by == ("U0ALICE", "U0BOB")
    assert b.votes == (("U0ALICE", "approve"), ("U0BOB", "approve"))
    assert r.corrections.proposed == ()  # the latest run's proposals are the sealed batch

    html = render_html(r)
    section = html[html.index('<section id="corrections">'):html.index('<section id="usage-vs-ledger">')]
    assert f"Approved batch #{batch_id}" in section and digest in section and "matches its rows" in section
    assert f"diagnosis run {recorded.run_id}" in section and "U0ALICE: approve" in section
    assert "recon proposes them and never applies them" in section
    assert "Proposed, not approved" not in section
    for row in rows:
        assert (row["reverses_entry_id"] or row["usage_record_id"]) in section
    assert section.count("<tr><td>reverse_debit</td>") + section.count("<tr><td>post_debit</td>") == len(rows)
    # the hostile reason is text, not markup
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;" in section
    assert "<script" not in html and "<b>bold" not in html

    md = render_markdown(r)
    part = md[md.index("## Corrections"):md.index("## Usage against ledger")]
    assert f"### Approved batch #{batch_id} (sealed)" in part
    assert f"| sha256 | `{digest}` (matches its rows) |" in part
    assert f"| diagnosis run | {recorded.run_id} |" in part and "| votes | U0ALICE approve, U0BOB approve |" in part
    assert "never applies them" in part and "Proposed, not approved" not in part
    first = rows[0]
    assert (f"| {first['action']} | {first['org_id']} / {first['project_id']} | {first['usage_record_id'] or '—'} |"
            f" {first['reverses_entry_id'] or '—'} |") in part
    assert "&lt;script&gt;alert(\"x\")&lt;/script&gt; & &lt;b&gt;bold&lt;/b&gt; \\| pipe" in part
    assert "<script" not in md


async def test_proposals_are_marked_not_approved_until_sealed(store: Store, recorded: Recorded) -> None:
    r = await load_report(store.pool, recorded.incident_id)
    assert r is not None and r.corrections.batches == ()
    assert len(r.corrections.proposed) == len(recorded.diagnosis.corrections)
    assert r.corrections.proposed_run_id == recorded.run_id
    html = render_html(r)
    section = html[html.index('<section id="corrections">'):html.index('<section id="usage-vs-ledger">')]
    assert "Proposed, not approved" in section and "Approved batch" not in section
    assert "never applies them" in section


def test_rows_that_do_not_match_the_digest_are_flagged_and_a_newer_run_s_proposals_shown(
        recorded: Recorded) -> None:
    rows = proposal_rows([c.model_dump() for c in recorded.diagnosis.corrections])
    batch = {"batch_id": 7, "prompt_id": 3, "run_id": 1, "digest": batch_digest("INC-x", 1, rows),
             "approved_by": ["U0ALICE"], "votes": '{"U0ALICE": "approve"}', "row_count": len(rows),
             "sealed_at": NOW}
    stored = [{"batch_id": 7, **row} for row in rows]
    ok = report_corrections("INC-x", [batch], stored, recorded.diagnosis, 1)
    assert ok.batches[0].verified and ok.batches[0].votes == (("U0ALICE", "approve"),) and ok.proposed == ()
    stored[0] = {**stored[0], "amount_minor": stored[0]["amount_minor"] + 1}
    later = report_corrections("INC-x", [batch], stored, recorded.diagnosis, 2)
    assert not later.batches[0].verified
    assert list(later.proposed) == rows and later.proposed_run_id == 2  # run 2 has no sealed batch
