"""Follow-up tickets in Jira: ADF, marker label, the lagging search, comments."""

from __future__ import annotations

import pytest

from bot.errors import StoreError, TrackerRejected, TrackerRetryable
from bot.tracker.ensure import comment_recovered, ensure_ticket
from bot.tracker.jira import JiraTracker
from bot.tracker.model import FollowUpState, Ticket, TicketSpec, marker, marker_label
from bot.tracker.render import adf_text
from bot.tracker.store import TicketStore
from tests.standins.jira import JiraStandIn
from tests.tracker.conftest import facts, follow_up, jira_config


def spec_of(incident_id: str, **kw: object) -> TicketSpec:
    f = follow_up(**kw)  # type: ignore[arg-type]
    return TicketSpec.of(facts(incident_id, f), f)


async def test_a_ticket_is_an_issue_with_adf_and_the_marker_label(jira_standin: JiraStandIn, tickets: TicketStore,
                                                                  incident_id: str) -> None:
    jira = JiraTracker(jira_config(jira_standin, layer_targets={"billing_worker": "BILL"}))
    jira_standin.projects.add("BILL")
    a = await ensure_ticket(tickets, jira, spec_of(incident_id, layer="metering_emitter"))
    b = await ensure_ticket(tickets, jira, spec_of(incident_id, layer="billing_worker"))
    await jira.aclose()
    assert (a.ticket.key, b.ticket.key) == ("OPS-1", "BILL-2")
    assert a.ticket.url == f"{jira_standin.url}/browse/OPS-1"
    fields = jira_standin.issues[0].fields
    assert fields["labels"] == ["recon", "recon-metering_emitter", marker_label(incident_id, "metering_emitter")]
    assert fields["issuetype"] == {"name": "Task"} and fields["summary"].startswith("[recon] metering_emitter")
    text = adf_text(fields["description"])
    assert marker(incident_id, "metering_emitter") in text and "corr-1" in text and "ai-1" in text
    links = [m["attrs"]["href"] for node in fields["description"]["content"] for c in node.get("content", [])
             for m in c.get("marks", []) if m["type"] == "link"]
    assert links and all(f"/incidents/{incident_id}?token=signed" in href for href in links)


async def test_the_lagging_search_never_leads_to_a_second_ticket(jira_standin: JiraStandIn, tickets: TicketStore,
                                                                 incident_id: str) -> None:
    jira = JiraTracker(jira_config(jira_standin), lookup_lag_s=120.0)
    jira_standin.search_lags = True
    spec = spec_of(incident_id)

    class CrashAfterCreate(TicketStore):
        async def created(self, incident_id: str, layer: str, ticket: Ticket, state: FollowUpState) -> bool:
            raise StoreError("the process died")

    with pytest.raises(StoreError):
        await ensure_ticket(CrashAfterCreate(tickets._pool), jira, spec)
    with pytest.raises(TrackerRetryable) as exc:  # search does not show it yet: wait, do not create
        await ensure_ticket(tickets, jira, spec)
    assert exc.value.retry_after_s is not None and 0 < exc.value.retry_after_s <= 120
    assert jira_standin.creates() == 1

    jira_standin.index()
    got = await ensure_ticket(tickets, jira, spec)
    await jira.aclose()
    assert got.action == "found" and got.ticket.key == "OPS-1" and jira_standin.creates() == 1
    searches = [r for r in jira_standin.requests if r.path == "/rest/api/3/search/jql"]
    assert searches and all(r.method == "POST" for r in searches)


async def test_an_old_attempt_is_retried_after_the_lag(jira_standin: JiraStandIn, tickets: TicketStore,
                                                       incident_id: str) -> None:
    """An attempt older than the search's lag that search does not show made nothing."""
    jira = JiraTracker(jira_config(jira_standin), lookup_lag_s=0.0)
    await tickets.attempt(incident_id, "metering_emitter", "jira", "OPS")
    got = await ensure_ticket(tickets, jira, spec_of(incident_id))
    await jira.aclose()
    assert got.action == "created" and jira_standin.creates() == 1


async def test_search_follows_next_page_token(jira_standin: JiraStandIn, tickets: TicketStore,
                                              incident_id: str) -> None:
    jira = JiraTracker(jira_config(jira_standin))
    spec = spec_of(incident_id)
    made = await jira.create(spec)
    jira_standin.empty_first_page = True
    got = await ensure_ticket(tickets, jira, spec)
    await jira.aclose()
    assert got.action == "found" and got.ticket.key == made.key
    tokens = [r for r in jira_standin.requests if r.path == "/rest/api/3/search/jql"]
    assert len(tokens) == 2


async def test_comments_on_change_and_recovery(jira_standin: JiraStandIn, tickets: TicketStore,
                                               incident_id: str) -> None:
    jira = JiraTracker(jira_config(jira_standin))
    await ensure_ticket(tickets, jira, spec_of(incident_id))
    changed = await ensure_ticket(tickets, jira, spec_of(incident_id, checks=["missing_usage", "wrong_anchor"]))
    recovered = await comment_recovered(tickets, jira, incident_id, None)
    await jira.aclose()
    assert changed.action == "commented" and [r.action for r in recovered] == ["commented"]
    first, second = (adf_text(c["body"]) for c in jira_standin.issues[0].comments)
    assert "New findings" in first and "wrong_anchor" in first and "recon:comment=" in first
    assert "recovered" in second


async def test_a_refused_create_leaves_no_attempt(jira_standin: JiraStandIn, tickets: TicketStore,
                                                  incident_id: str) -> None:
    jira = JiraTracker(jira_config(jira_standin, layer_targets={"ui_export": "NOPE"}))
    with pytest.raises(TrackerRejected) as exc:
        await ensure_ticket(tickets, jira, spec_of(incident_id, layer="ui_export"))
    await jira.aclose()
    assert exc.value.http_status == 400 and "valid project is required" in str(exc.value)
    assert await tickets.get(incident_id, "ui_export") is None
