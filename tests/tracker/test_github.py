"""Follow-up tickets in GitHub: one per (incident, layer), exactly once, comments on change."""

from __future__ import annotations

import asyncio

import pytest

from bot.errors import StoreError
from bot.store.db import connect_pool
from bot.tracker.ensure import comment_recovered, ensure_ticket
from bot.tracker.github import GitHubTracker
from bot.tracker.model import FollowUpState, Ticket, TicketSpec, marker
from bot.tracker.store import TicketStore
from tests.standins.github import GitHubStandIn
from tests.tracker.conftest import facts, follow_up, github_config


def spec_of(incident_id: str, **kw: object) -> TicketSpec:
    f = follow_up(**kw)  # type: ignore[arg-type]
    return TicketSpec.of(facts(incident_id, f), f)


class CrashAfterCreate(TicketStore):
    """The process "dies" between the tracker's answer and the store's write."""

    async def created(self, incident_id: str, layer: str, ticket: Ticket, state: FollowUpState) -> bool:
        raise StoreError("the store went away")


async def test_one_ticket_per_layer_with_the_evidence(github_standin: GitHubStandIn, tickets: TicketStore,
                                                      incident_id: str) -> None:
    gh = GitHubTracker(github_config(github_standin, layer_targets={"ui_export": "acme/web"}))
    github_standin.repos.add("acme/web")
    f1 = follow_up("metering_emitter", ["missing_usage", "duplicate_charge"], ["ai-1", "ai-2"], {"USD": 1200})
    f2 = follow_up("ui_export", ["wrong_source"], ["ai-3"], {"EUR": -50})
    fs = facts(incident_id, f1, f2)
    got = [await ensure_ticket(tickets, gh, TicketSpec.of(fs, f)) for f in (f1, f2)]
    again = [await ensure_ticket(tickets, gh, TicketSpec.of(fs, f)) for f in (f1, f2)]
    await gh.aclose()

    assert [g.action for g in got] == ["created", "created"]
    assert [a.action for a in again] == ["unchanged", "unchanged"]
    assert github_standin.creates() == 2
    (billing,) = github_standin.issues_of("acme/billing")
    (web,) = github_standin.issues_of("acme/web")
    assert billing.title == f"[recon] metering_emitter: missing_usage, duplicate_charge ({incident_id})"
    assert billing.labels == ["recon", "recon:metering_emitter"] and web.labels == ["recon", "recon:ui_export"]
    body = billing.body
    assert f"<!-- {marker(incident_id, 'metering_emitter')} -->" in body
    for needle in ("`corr-1`", "`0af7651916cd43dd8448eb211c80319c`", "`ai-1`", "`ai-2`", "`USD`: +1,200 minor",
                   "fix the metering\\_emitter", "`" + "ab" * 32 + "`", f"/incidents/{incident_id}?token=signed"):
        assert needle in body, needle
    assert "`EUR`: -50 minor" in web.body
    stored = await tickets.get(incident_id, "ui_export")
    assert stored is not None and stored.key == f"#{web.number}" and stored.state == "open"
    assert stored.url == f"{github_standin.url}/acme/web/issues/{web.number}"


async def test_no_second_ticket_after_a_crash_between_create_and_store(
        github_standin: GitHubStandIn, tickets: TicketStore, store_url: str, incident_id: str) -> None:
    gh = GitHubTracker(github_config(github_standin))
    github_standin.search_lags = True  # the search index will not show the new issue
    for n in range(120):  # enough labelled issues that the lookup must follow the Link header
        github_standin.add_issue("acme/billing", f"other {n}", f"<!-- recon:incident=x{n} -->", ("recon",))
    spec = spec_of(incident_id)
    with pytest.raises(StoreError):
        await ensure_ticket(CrashAfterCreate(tickets._pool), gh, spec)
    assert github_standin.creates() == 1
    row = await tickets.get(incident_id, "metering_emitter")
    assert row is not None and row.state == "creating" and row.key is None

    got = await ensure_ticket(tickets, gh, spec)  # "the restarted process"
    await gh.aclose()
    assert got.action == "found" and github_standin.creates() == 1
    searched = [r for r in github_standin.requests if r.path == "/search/issues"]
    assert searched and "repo:acme/billing in:body" in searched[-1].params["q"]
    listed = [r for r in github_standin.requests if r.method == "GET" and r.path == "/repos/acme/billing/issues"]
    assert any(r.params.get("page") == "2" for r in listed), "the Link header's next page was not followed"
    assert listed[0].params["labels"] == "recon" and listed[0].params["state"] == "all"
    row = await tickets.get(incident_id, "metering_emitter")
    assert row is not None and row.state == "open" and row.key == got.ticket.key


async def test_two_processes_create_one_ticket(github_standin: GitHubStandIn, store_url: str,
                                               incident_id: str) -> None:
    github_standin.create_delay_s = 0.3
    pools = [await connect_pool(store_url, min_size=1, max_size=2) for _ in range(2)]
    trackers = [GitHubTracker(github_config(github_standin)) for _ in range(2)]
    try:
        spec = spec_of(incident_id)
        racers = (ensure_ticket(TicketStore(p), t, spec) for p, t in zip(pools, trackers, strict=True))
        got = await asyncio.gather(*racers)
    finally:
        for t in trackers:
            await t.aclose()
        for p in pools:
            await p.close()
    assert github_standin.creates() == 1
    assert sorted(g.action for g in got) == ["created", "unchanged"]
    assert got[0].ticket == got[1].ticket


async def test_a_later_diagnosis_comments_what_changed_once(github_standin: GitHubStandIn, tickets: TicketStore,
                                                            incident_id: str) -> None:
    gh = GitHubTracker(github_config(github_standin))
    await ensure_ticket(tickets, gh, spec_of(incident_id, checks=["missing_usage"], instances=["ai-1", "ai-2"]))
    later = spec_of(incident_id, checks=["duplicate_charge"], instances=["ai-2", "ai-9"], impact={"USD": 300},
                    findings=2)
    first = await ensure_ticket(tickets, gh, later)
    second = await ensure_ticket(tickets, gh, later)
    await gh.aclose()
    assert (first.action, second.action) == ("commented", "unchanged")
    (issue,) = github_standin.issues_of("acme/billing")
    (comment,) = issue.comments
    new, _, resolved = comment["body"].partition("### Resolved")
    assert "### New findings" in new and "`duplicate_charge`" in new and "`ai-9`" in new
    assert "`missing_usage`" in resolved and "`ai-1`" in resolved and "ai-2" not in comment["body"]
    assert "Findings: 1 → 2" in comment["body"] and "USD +1,200" in comment["body"]


async def test_a_comment_is_not_posted_twice_after_a_crash(github_standin: GitHubStandIn, tickets: TicketStore,
                                                           incident_id: str) -> None:
    gh = GitHubTracker(github_config(github_standin))
    await ensure_ticket(tickets, gh, spec_of(incident_id))
    later = spec_of(incident_id, checks=["ledger_mismatch"])

    class DiesAfterComment(TicketStore):
        async def comment_done(self, *a: object, **k: object) -> None:
            raise StoreError("the store went away")

    with pytest.raises(StoreError):
        await ensure_ticket(DiesAfterComment(tickets._pool), gh, later)
    got = await ensure_ticket(tickets, gh, later)
    await gh.aclose()
    (issue,) = github_standin.issues_of("acme/billing")
    assert len(issue.comments) == 1 and got.action == "unchanged"
    row = await tickets.get(incident_id, "metering_emitter")
    assert row is not None and row.last_comment_digest == later.state.digest and row.pending_comment_digest is None


async def test_recovery_is_commented_once_per_ticket(github_standin: GitHubStandIn, tickets: TicketStore,
                                                     incident_id: str) -> None:
    gh = GitHubTracker(github_config(github_standin))
    await ensure_ticket(tickets, gh, spec_of(incident_id, layer="metering_emitter"))
    await ensure_ticket(tickets, gh, spec_of(incident_id, layer="billing_worker"))
    first = await comment_recovered(tickets, gh, incident_id, "https://recon.example.com/r")
    second = await comment_recovered(tickets, gh, incident_id, "https://recon.example.com/r")
    after = await ensure_ticket(tickets, gh, spec_of(incident_id, checks=["wrong_anchor"]))
    await gh.aclose()
    assert [e.action for e in first] == ["commented", "commented"] and second == []
    assert after.action == "unchanged"  # a recovered ticket is not commented on again
    for issue in github_standin.issues_of("acme/billing"):
        (comment,) = issue.comments
        assert "recovered: all four recovery criteria hold" in comment["body"]
    rows = await tickets.of_incident(incident_id)
    assert {r.state for r in rows} == {"recovered"}


async def test_pull_requests_and_other_markers_are_not_taken_for_the_ticket(
        github_standin: GitHubStandIn, tickets: TicketStore, incident_id: str) -> None:
    hidden = f"<!-- {marker(incident_id, 'metering_emitter')} -->"
    github_standin.add_issue("acme/billing", "a PR quoting it", hidden, ("recon",), pull_request=True)
    github_standin.add_issue("acme/billing", "another layer",
                             f"<!-- {marker(incident_id, 'billing_worker')} -->", ("recon",))
    gh = GitHubTracker(github_config(github_standin))
    got = await ensure_ticket(tickets, gh, spec_of(incident_id))
    await gh.aclose()
    assert got.action == "created" and github_standin.creates() == 1


async def test_a_marker_quoted_inside_another_body_is_not_the_ticket(
        github_standin: GitHubStandIn, tickets: TicketStore, incident_id: str) -> None:
    hidden = f"<!-- {marker(incident_id, 'metering_emitter')} -->"
    github_standin.add_issue("acme/billing", "quotes it", f"see `{hidden}` here\n\n<!-- recon:incident=other -->",
                             ("recon",))
    gh = GitHubTracker(github_config(github_standin))
    got = await ensure_ticket(tickets, gh, spec_of(incident_id))
    await gh.aclose()
    assert got.action == "created"
