"""The four recovery criteria, one by one."""

from __future__ import annotations

import pytest

from bot.diagnosis.model import CheckName, Diagnosis, Finding, Identifiers, Subject, WindowOut
from bot.flows.verify import evaluate
from tests.constants import T


def diag(*checks: CheckName, complete: bool = True, instances: tuple[str, ...] = ("ai-1",)) -> Diagnosis:
    return Diagnosis(subject=Subject(correlation_id="c"), window=WindowOut(start=T, end=T), complete=complete,
                     identifiers=Identifiers(app_instance_ids=list(instances)),
                     findings=[Finding(check=c, app_instance_id="ai-1", org_id="o", project_id="p",
                                       owning_layer="billing_worker", summary="s") for c in checks])


@pytest.mark.parametrize(("check", "failing"), [
    ("wrong_source", "separation"), ("ledger_mismatch", "reconciled"), ("control_plane_drift", "control_plane"),
    ("wrong_anchor", "control_plane"), ("duplicate_charge", "charges"), ("missing_usage", "charges"),
])
def test_each_check_fails_exactly_its_criterion(check: CheckName, failing: str) -> None:
    crit = evaluate(diag(check), diag(check))
    assert [c.key for c in crit if not c.holds] == [failing]
    assert next(c for c in crit if c.key == failing).before == 1


def test_all_hold_when_nothing_remains_and_not_when_incomplete_or_blind() -> None:
    assert all(c.holds for c in evaluate(diag("wrong_source", "duplicate_charge"), diag()))
    assert not any(c.holds for c in evaluate(diag("wrong_source"), diag(complete=False)))
    assert not any(c.holds for c in evaluate(diag("wrong_source"), diag(instances=())))  # no evidence proves nothing
    assert all(c.before is None for c in evaluate(None, diag()))
