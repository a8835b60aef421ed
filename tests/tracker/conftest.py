"""Fixtures of the tracker tests: the GitHub and Jira stand-ins, an incident in a fresh
store, ticket stores, configurations and follow-ups."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

import pytest_asyncio
from pydantic import SecretStr

from bot.diagnosis.model import CheckName, FollowUp, OwningLayer
from bot.store.store import Store
from bot.tracker.model import EvidenceDigest, IncidentFacts
from bot.tracker.settings import TrackerConfig
from bot.tracker.store import TicketStore
from tests.standins.github import GitHubStandIn, github_standin
from tests.standins.jira import JiraStandIn, jira_standin

__all__ = ["github_standin", "jira_standin"]

REPORT_URL = "https://recon.example.com/incidents/INC?token=signed"


@pytest_asyncio.fixture
async def incident_id(store: Store) -> str:
    inc = await store.create_incident(title="disputed charge", origin="cli", correlation_id="corr-1")
    return inc.incident_id


@pytest_asyncio.fixture
async def tickets(store: Store) -> AsyncIterator[TicketStore]:
    yield TicketStore(store.pool)


def github_config(gh: GitHubStandIn, **kw: object) -> TrackerConfig:
    return TrackerConfig(kind="github", base_url=gh.url, token=SecretStr(gh.token), default_target="acme/billing",
                         timeout_s=2.0, **kw)  # type: ignore[arg-type]


def jira_config(jira: JiraStandIn, **kw: object) -> TrackerConfig:
    return TrackerConfig(kind="jira", base_url=jira.url, token=SecretStr(jira.token), default_target="OPS",
                         user=jira.user, timeout_s=2.0, **kw)  # type: ignore[arg-type]


def follow_up(layer: OwningLayer = "metering_emitter", checks: Sequence[CheckName] = ("missing_usage",),
              instances: Sequence[str] = ("ai-1",), impact: dict[str, int] | None = None,
              findings: int = 1) -> FollowUp:
    return FollowUp(owning_layer=layer, fix=f"fix the {layer}", checks=list(checks),
                    app_instance_ids=list(instances), usage_record_ids=["ur-1"], ledger_entry_ids=["le-1"],
                    findings=findings, impact=impact if impact is not None else {"USD": 1200})


def facts(incident_id: str, *follow_ups: FollowUp) -> IncidentFacts:
    return IncidentFacts(incident_id=incident_id, report_url=REPORT_URL.replace("INC", incident_id),
                         follow_ups=list(follow_ups) or [follow_up()], correlation_ids=["corr-1"],
                         trace_ids=["0af7651916cd43dd8448eb211c80319c"],
                         evidence=[EvidenceDigest("usage_by_correlation", "ab" * 32, 3)])
