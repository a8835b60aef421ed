"""Fixtures of the report tests: a store holding a real recorded diagnosis of the demo
platform (its billing database loaded, logs and traces as an offline folder), plus an
approval prompt with votes and a freeze, as the approval flow records them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest_asyncio

from bot.diagnosis.model import Diagnosis, Subject, Window
from bot.flows.diagnosis import SourceSet
from bot.flows.run import run_recorded
from bot.scenario import Platform
from bot.sources.billing import PostgresBillingReader
from bot.sources.offline import OfflineEvidence
from bot.store.store import Store
from tests.conftest import LoadedPlatform
from tests.constants import NOW


@dataclass(frozen=True, slots=True)
class Recorded:
    incident_id: str
    run_id: int
    diagnosis: Diagnosis
    platform: Platform
    freeze_id: int
    prompt_id: int
    billing_url: str
    evidence_dir: Path


async def add_approvals(store: Store, incident_id: str, instances: list[tuple[str, str, str]],
                        message_ts: str = "1763640000.000200") -> tuple[int, int]:
    """A freeze prompt approved by two votes (and a refused one by a non-approver) and the active freeze
    it made: rows as the approval flow writes them. Returns (prompt_id, freeze_id)."""
    scope = {"orgs": [], "projects": [], "app_instances": [list(i) for i in instances]}
    async with store.pool.acquire() as conn, conn.transaction():
        prompt_id = await conn.fetchval(
            "INSERT INTO approval_prompts (incident_id, kind, channel, thread_ts, message_ts, scope, reason, quorum,"
            " status, created_at, expires_at, decided_at, decided_by)"
            " VALUES ($1, 'freeze', 'C0INCIDENT', '1763640000.000100', $6, $2,"
            " 'freeze manual adjustments <while> we look', 2, 'approved', $3, $4, $5, ARRAY['U0ALICE', 'U0BOB'])"
            " RETURNING prompt_id",
            incident_id, scope, NOW + timedelta(minutes=1), NOW + timedelta(hours=4), NOW + timedelta(minutes=9),
            message_ts)
        events = [
            ("prompt", None, None, None, 1),
            ("vote", "U0ALICE", "approve", "reaction", 3),
            ("vote", "U0MALLORY", "approve", "reaction", 4),
            ("refusal", "U0MALLORY", None, "reaction", 4),
            ("vote", "U0BOB", "approve", "button", 9),
            ("decision", None, None, None, 9),
        ]
        for i, (type_, user, vote, via, minute) in enumerate(events):
            await conn.execute(
                "INSERT INTO approval_events (prompt_id, incident_id, type, user_id, vote, via, channel, message_ts,"
                " details, dedup_key, created_at) VALUES ($1, $2, $3, $4, $5, $6, 'C0INCIDENT', $10,"
                " $7, $8, $9)",
                prompt_id, incident_id, type_, user, vote, via,
                {"reason": "not an approver"} if type_ == "refusal" else {},
                f"{incident_id}:{i}", NOW + timedelta(minutes=minute), message_ts)
        for user, via, minute in (("U0ALICE", "reaction", 3), ("U0BOB", "button", 9)):
            await conn.execute(
                "INSERT INTO approval_votes (prompt_id, user_id, vote, via, created_at) VALUES ($1, $2, 'approve', $3,"
                " $4)", prompt_id, user, via, NOW + timedelta(minutes=minute))
        freeze_id = await conn.fetchval(
            "INSERT INTO freezes (incident_id, status, scope, reason, approved_by, prompt_id, frozen_at)"
            " VALUES ($1, 'active', $2, 'freeze manual adjustments <while> we look', ARRAY['U0ALICE', 'U0BOB'], $3,"
            " $4) RETURNING freeze_id", incident_id, scope, prompt_id, NOW + timedelta(minutes=9))
        await conn.execute("UPDATE approval_prompts SET freeze_id = $2 WHERE prompt_id = $1", prompt_id, freeze_id)
        for org, project, inst in instances:
            await conn.execute("INSERT INTO freeze_scopes (freeze_id, org_id, project_id, app_instance_id)"
                               " VALUES ($1, $2, $3, $4)", freeze_id, org, project, inst)
    return int(prompt_id), int(freeze_id)


@pytest_asyncio.fixture
async def recorded(store: Store, demo_loaded: LoadedPlatform) -> AsyncIterator[Recorded]:
    """The demo platform's disputed call diagnosed and recorded in ``store``."""
    loaded = demo_loaded
    platform = loaded.platform
    cid = platform.disputed_correlation_id
    assert cid is not None
    offline = OfflineEvidence(loaded.evidence)
    reader = PostgresBillingReader(loaded.billing_url, statement_timeout_ms=10_000)
    try:
        rec = await run_recorded(store=store, sources=SourceSet(offline.logs, offline.traces, reader),
                                 subject=Subject(correlation_id=cid), window=Window(NOW - timedelta(days=7), NOW),
                                 now=NOW, origin="slack", actor="U0ALICE", row_cap=1000)
    finally:
        await reader.aclose()
    assert rec.incident is not None and rec.run_id is not None
    d = rec.outcome.diagnosis
    await store.set_incident_thread(rec.incident.incident_id, "C0INCIDENT", "1763640000.000100")
    instances = sorted({(f.org_id or "", f.project_id or "", f.app_instance_id or "") for f in d.findings
                        if f.app_instance_id})
    prompt_id, freeze_id = await add_approvals(store, rec.incident.incident_id, instances)
    yield Recorded(rec.incident.incident_id, rec.run_id, d, platform, freeze_id, prompt_id, loaded.billing_url,
                   loaded.evidence)
