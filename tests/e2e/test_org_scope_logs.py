"""A dispute with no correlation id: an org's instances are screened in the database, and
Loki is read by app_instance_id for those with missing hours only, so the owning layer
of their missing usage is decided as for a correlation diagnosis."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot.diagnosis.model import Subject, Window
from bot.flows.diagnosis import SourceSet, diagnose, scope_logs
from bot.flows.diagnosis.runner import Outcome
from bot.sources.billing import PostgresBillingReader
from bot.sources.offline import OfflineEvidence
from tests.conftest import LoadedPlatform
from tests.constants import NOW
from tests.e2e.test_flow_scenarios import expected_by_key, found_by_key


async def diagnose_org(loaded: LoadedPlatform, org: str) -> Outcome:
    evidence = OfflineEvidence(loaded.evidence)
    reader = PostgresBillingReader(loaded.billing_url, statement_timeout_ms=10_000)
    try:
        return await diagnose(Subject(org_id=org), Window(NOW - timedelta(days=7), NOW), NOW,
                              SourceSet(evidence.logs, evidence.traces, reader), org_scope=(org, None))
    finally:
        await reader.aclose()


async def test_org_scope_reads_logs_of_instances_with_missing_hours_only(grid_loaded: LoadedPlatform) -> None:
    p = grid_loaded.platform
    layers: set[str] = set()
    for org in sorted({i.org_id for i in p.instances}):
        outcome = await diagnose_org(grid_loaded, org)
        org_instances = {i.app_instance_id for i in p.instances if i.org_id == org}
        # with the logs, missing usage is owned as for a correlation diagnosis (billing_worker too); a
        # debit without a row is not tied to an instance (only the missing hours' logs are read)
        orphans = {e.ledger_entry_ids and next(iter(e.ledger_entry_ids)) for e in p.expected
                   if e.flavour == "orphan_debit"}
        want = {(k[0], None if v[1] and v[1] <= orphans else k[1], k[2]): v
                for k, v in expected_by_key(p, org_instances).items()}
        assert found_by_key(outcome.diagnosis.findings) == want
        missing = sorted({e.app_instance_id for e in p.expected if e.check == "missing_usage"
                          and e.app_instance_id in org_instances})
        rec = next(s for s in outcome.steps if s.name == "reconciliation")
        asked = sorted(c.request.split('app_instance_id="')[1].rstrip('"') for c in rec.calls
                       if c.source == "loki")
        assert asked == missing
        layers |= {f.owning_layer for f in outcome.diagnosis.findings if f.check == "missing_usage"}
        assert any(f"logs read for {len(missing)} of {len(missing)} instance(s) (those with missing hours)" in line
                   for line in rec.lines)
        pivot = next(s for s in outcome.steps if s.name == "pivot")
        assert not [c for c in pivot.calls if c.source == "loki"]  # not every instance's
        assert outcome.diagnosis.complete
    assert layers == {"metering_emitter", "billing_worker"}


async def test_at_most_so_many_instances_logs_are_read(grid_loaded: LoadedPlatform,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scope_logs, "MAX_SCOPE_LOG_INSTANCES", 1)
    p = grid_loaded.platform
    org = next(e for e in p.expected if e.check == "missing_usage").app_instance_id
    org_id = next(i.org_id for i in p.instances if i.app_instance_id == org)
    outcome = await diagnose_org(grid_loaded, org_id)
    rec = next(s for s in outcome.steps if s.name == "reconciliation")
    assert len([c for c in rec.calls if c.source == "loki"]) == 1
    assert any(line.startswith("logs read for 1 of ") for line in rec.lines)
    assert any("owning layer of the others' missing usage is not confirmed" in n for n in outcome.diagnosis.notes)
