"""The report's data from a store holding a real recorded diagnosis of the demo platform."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import asyncpg

from bot.diagnosis.model import Diagnosis, Finding, Subject, WindowOut
from bot.report.data import load_report, org_and_project
from bot.report.render import render_html, render_markdown
from bot.sources.protocols import SourceCall
from bot.store.store import Incident, Store
from tests.report.conftest import Recorded


async def test_unknown_incident_is_none(store: Store) -> None:
    assert await load_report(store.pool, "INC-20261120-nosuch") is None


async def test_report_gathers_the_incident(store: Store, recorded: Recorded) -> None:
    r = await load_report(store.pool, recorded.incident_id)
    assert r is not None
    assert r.incident.incident_id == recorded.incident_id and r.incident.slack_channel == "C0INCIDENT"
    assert r.latest_run_id == recorded.run_id and r.diagnosis == recorded.diagnosis
    assert [run.run_id for run in r.runs] == [recorded.run_id]
    assert r.runs[0].checks == ("missing_usage", "wrong_source", "duplicate_charge")
    # the timeline, in order, from request to verdict
    types = [e.type for e in r.timeline]
    assert types[0] == "diagnosis_started" and types[-1] == "diagnosis_finished"
    assert types.count("finding") == 3 and types.count("step_finished") == 6
    assert all(e.correlation_id == recorded.diagnosis.subject.correlation_id for e in r.timeline)
    # evidence: one group for the run, every record before
    assert [g.run_id for g in r.evidence] == [recorded.run_id]
    g = r.evidence[0]
    # 15 source calls, the impact summary, the proposed corrections
    assert not g.after and len(g.before) == len(g.comparisons) == 17
    assert [c.step for c in g.comparisons][:2] == ["logs", "billing_rows"]
    assert all(c.status == "before only" for c in g.comparisons)
    usage = next(c for c in g.comparisons if c.request == "usage_for_instances")
    assert usage.before_count == 224 and len(usage.before_digests[0]) == 64
    # findings and impact come from the latest diagnosis
    assert {f.check for f in r.findings} == {"missing_usage", "wrong_source", "duplicate_charge"}
    assert sorted((i.app_instance_id, i.overcharged_minor, i.undercharged_minor) for i in r.impact) == sorted(
        (i.app_instance_id, i.overcharged_minor, i.undercharged_minor) for i in recorded.diagnosis.impact)
    # approvals and freezes
    (p,) = r.prompts
    assert p.status == "approved" and [v.user_id for v in p.votes] == ["U0ALICE", "U0BOB"]
    assert [e.type for e in p.events] == ["prompt", "vote", "vote", "refusal", "vote", "decision"]
    (f,) = r.freezes
    assert f.status == "active" and f.freeze_id == recorded.freeze_id and len(f.scopes) == 3
    assert r.active_freezes == [f]


async def test_usage_against_ledger_matches_the_billing_database(store: Store, recorded: Recorded) -> None:
    """Charged = usage debits less their reversals, computed here straight from the billing
    database; expected = charged less the net impact found."""
    r = await load_report(store.pool, recorded.incident_id)
    assert r is not None
    uvl = r.usage_vs_ledger
    assert uvl.complete, uvl.notes
    d = recorded.diagnosis
    w = d.window
    conn = await asyncpg.connect(recorded.billing_url)
    try:
        truth = {row["app_instance_id"]: (row["rows"], row["charged"]) for row in await conn.fetch(
            """
            with u as (select usage_record_id, app_instance_id from billing.usage_records
                       where app_instance_id = any($1::text[]) and period_start >= date_trunc('hour', $2::timestamptz)
                         and period_start < $3),
                 deb as (select l.* from billing.ledger_entries l join u using (usage_record_id)
                         where l.kind = 'usage' and l.direction = 'debit'),
                 rev as (select r.amount_minor, d.usage_record_id from billing.ledger_entries r
                         join deb d on r.reverses_entry_id = d.ledger_entry_id where r.kind = 'reversal')
            select u.app_instance_id, count(distinct u.usage_record_id) as rows,
                   coalesce((select sum(amount_minor) from deb join u u2 using (usage_record_id)
                             where u2.app_instance_id = u.app_instance_id), 0)
                 - coalesce((select sum(amount_minor) from rev join u u3 using (usage_record_id)
                             where u3.app_instance_id = u.app_instance_id), 0) as charged
            from u group by u.app_instance_id
            """, d.identifiers.app_instance_ids, w.start, w.end)}
    finally:
        await conn.close()
    got = {c.app_instance_id: (c.usage_rows, c.charged_minor) for c in uvl.instances}
    assert got == truth
    net = {i.app_instance_id: i.overcharged_minor - i.undercharged_minor for i in d.impact}
    for c in uvl.instances:
        assert c.currency == "USD"
        assert c.charged_minor - c.expected_minor == net.get(c.app_instance_id, 0)
    assert {c.app_instance_id for c in uvl.instances if c.difference_minor} == set(net)


async def test_after_phase_is_compared_with_before(store: Store, recorded: Recorded) -> None:
    """A re-check recorded as phase 'after': same query and params, other rows → changed;
    same rows → unchanged."""
    r0 = await load_report(store.pool, recorded.incident_id)
    assert r0 is not None
    before = {c.request: c for c in r0.evidence[0].comparisons}
    at = datetime(2026, 11, 21, tzinfo=UTC)
    app_instances = before["app_instances"]
    call = SourceCall(source="billing", kind="sql", request="app_instances", params=app_instances.params,
                      started_at=at)
    rec = next(e for e in r0.evidence[0].before if e.request == "app_instances")
    await store.add_evidence(recorded.incident_id, recorded.run_id, "pivot", "after", call, rec.rows, 1000)
    comps = before["components"]
    call2 = SourceCall(source="billing", kind="sql", request="components", params=comps.params, started_at=at)
    await store.add_evidence(recorded.incident_id, recorded.run_id, "pivot", "after", call2, [{"changed": True}], 1000)
    r = await load_report(store.pool, recorded.incident_id)
    assert r is not None
    by = {c.request: c for c in r.evidence[0].comparisons}
    assert by["app_instances"].status == "unchanged"
    assert by["components"].status == "changed" and by["components"].after_count == 1
    assert by["rate_cards"].status == "before only"
    assert len(r.evidence[0].after) == 2


async def test_org_and_project_come_from_the_findings_when_the_incident_has_none(
        store: Store, recorded: Recorded) -> None:
    """A correlation-id incident names no org: the report shows the one its findings sit in."""
    r = await load_report(store.pool, recorded.incident_id)
    assert r is not None and r.incident.org_id is None
    (pair,) = {(f.org_id, f.project_id) for f in recorded.diagnosis.findings}
    assert (r.org_id, r.project_id) == pair and pair[0] and pair[1]
    assert f"| org / project | {pair[0]} / {pair[1]} |" in render_markdown(r)
    assert f"org: {pair[0]} / {pair[1]}" in render_html(r)


def test_org_and_project_stay_empty_for_findings_in_two_orgs_and_the_incident_s_own_win() -> None:
    inc = Incident(**{k: None for k in Incident.__dataclass_fields__})
    window = WindowOut(start=datetime(2026, 11, 1, tzinfo=UTC), end=datetime(2026, 11, 2, tzinfo=UTC))
    d = Diagnosis(subject=Subject(correlation_id="c-1"), window=window, findings=[
        Finding(check="wrong_source", owning_layer="billing_worker", summary="x", app_instance_id=None, org_id=org,
                project_id="prj-1")
        for org in ("org-a", "org-b")])
    assert org_and_project(inc, d) == (None, None)
    assert org_and_project(inc, d.model_copy(update={"findings": d.findings[:1]})) == ("org-a", "prj-1")
    assert org_and_project(replace(inc, org_id="org-z", project_id=None), d) == ("org-z", None)
