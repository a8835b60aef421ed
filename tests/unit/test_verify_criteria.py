"""The four recovery criteria, one by one; criterion 1 needs a usage export covering the
incident's org and months, read in that verification."""

from __future__ import annotations

import pytest

from bot.diagnosis.model import CheckName, Diagnosis, ExportRead, Finding, Identifiers, Subject, WindowOut
from bot.flows.verify import evaluate, export_how
from bot.render.slack import blocks_to_text, verification_message
from tests.constants import T

MONTH = f"{T:%Y-%m}"


def export(org: str = "o", months: tuple[str, ...] = (MONTH,), project: str | None = None) -> ExportRead:
    return ExportRead(origin="file usage.csv", org_id=org, project_id=project, months=list(months), lines=10,
                      sha256="0" * 64)


def diag(*checks: CheckName, complete: bool = True, instances: tuple[str, ...] = ("ai-1",),
         read: ExportRead | None = None) -> Diagnosis:
    return Diagnosis(subject=Subject(correlation_id="c"), window=WindowOut(start=T, end=T), complete=complete,
                     identifiers=Identifiers(app_instance_ids=list(instances), org_ids=["o"], project_ids=["p"]),
                     findings=[Finding(check=c, app_instance_id="ai-1", org_id="o", project_id="p",
                                       owning_layer="billing_worker", summary="s") for c in checks],
                     export=read)


@pytest.mark.parametrize(("check", "failing"), [
    ("wrong_source", "separation"), ("export_mismatch", "separation"), ("ledger_mismatch", "reconciled"),
    ("control_plane_drift", "control_plane"), ("wrong_anchor", "control_plane"), ("duplicate_charge", "charges"),
    ("missing_usage", "charges"),
])
def test_each_check_fails_exactly_its_criterion(check: CheckName, failing: str) -> None:
    crit = evaluate(diag(check), diag(check, read=export()))
    assert [c.key for c in crit if not c.holds] == [failing]
    assert next(c for c in crit if c.key == failing).before == 1
    assert next(c for c in crit if c.key == failing).state == "fails"


def test_all_hold_when_nothing_remains_and_not_when_incomplete_or_blind() -> None:
    assert all(c.holds and c.state == "holds"
               for c in evaluate(diag("wrong_source", "duplicate_charge"), diag(read=export())))
    assert not any(c.holds for c in evaluate(diag("wrong_source"), diag(complete=False, read=export())))
    assert not any(c.holds for c in evaluate(diag("wrong_source"), diag(instances=(), read=export())))
    assert all(c.before is None for c in evaluate(None, diag(read=export())))


@pytest.mark.parametrize(("read", "why"), [
    (None, "no usage export was read"),
    (export(org="other"), "not of the incident's org o"),
    (export(months=("1999-01",)), f"does not cover {MONTH}"),
    (export(project="elsewhere"), "covers project elsewhere only"),
])
def test_criterion_1_is_not_verified_without_an_export_covering_the_scope(read: ExportRead | None,
                                                                          why: str) -> None:
    crit = evaluate(diag("wrong_source"), diag(read=read))
    first = crit[0]
    assert first.key == "separation" and first.state == "not_verified" and not first.holds and why in first.why
    assert all(c.holds for c in crit[1:])


def test_a_project_export_covers_its_project_and_an_org_export_any() -> None:
    assert evaluate(None, diag(read=export(project="p")))[0].holds
    assert evaluate(None, diag(read=export()), scope=("o", "p"))[0].holds


def test_the_message_says_how_to_give_an_export() -> None:
    crit = evaluate(None, diag())
    doc = {"incident_id": "INC-20261120-abc123", "recovered": False, "complete": True, "before_checks": None,
           "after_checks": {}, "criteria": [{"key": c.key, "text": c.text, "holds": c.holds, "state": c.state,
                                             "why": c.why, "before": c.before, "after": c.after,
                                             "how": export_how("INC-20261120-abc123") if c.why else ""}
                                            for c in crit]}
    text = blocks_to_text(verification_message(doc).blocks)
    assert "not verified" in text and "recon verify INC-20261120-abc123 --export usage.csv" in text
    assert "share the CSV in the incident's thread" in text and "BILLING_EXPORT_URL" in text
