"""The "Usage export" step in a diagnosis: only with an export, before the reconciliation,
its findings and follow-up in the document, its read recorded; fetched from
BILLING_EXPORT_URL for the scope's months, and its failures the export source's."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from importlib import resources
from typing import Any

import jsonschema

from bot.diagnosis.model import Subject, Window
from bot.export.csvfile import open_export
from bot.export.request import ExportFetch, ExportReady, months_of
from bot.export.run import reconcile_export
from bot.flows.diagnosis import SourceSet, diagnose
from bot.flows.steps_report import StepReport
from bot.sources.billing import PostgresBillingReader
from bot.sources.protocols import SourceCall
from tests.export.conftest import ORG, faithful_csv
from tests.export.test_reconcile import edit
from tests.standins.export_api import ExportApiStandIn

SCHEMA = json.loads(resources.files("bot.contract").joinpath("diagnosis.schema.json").read_text())
WINDOW = Window(datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 11, 20, tzinfo=UTC))
NOW = datetime(2026, 11, 20, tzinfo=UTC)


class Calls:
    def __init__(self) -> None:
        self.calls: list[tuple[str, SourceCall, list[Any]]] = []
        self.steps: list[str] = []

    async def step_started(self, name: str, title: str) -> None:
        self.steps.append(title)

    async def step_finished(self, report: StepReport) -> None:
        return None

    async def source_call(self, step: str, call: SourceCall, items: Any, error: str | None) -> None:
        self.calls.append((step, call, list(items)))


def sources(billing: PostgresBillingReader) -> SourceSet:
    return SourceSet(logs=None, traces=None, billing=billing, missing={"loki": "off", "tempo": "off"})


async def test_without_an_export_there_is_no_export_step(billing: PostgresBillingReader) -> None:
    obs = Calls()
    out = await diagnose(Subject(org_id=ORG), WINDOW, NOW, sources(billing), obs, org_scope=(ORG, None))
    assert "Usage export" not in obs.steps
    assert {s.of for s in out.steps} == {6}  # the thread numbers its replies 1/6 … 6/6
    assert out.diagnosis.sources.export == "not_given" and out.diagnosis.export is None


async def test_an_export_read_before_the_run_is_a_step_with_findings_and_a_follow_up(
        billing: PostgresBillingReader) -> None:
    data = edit(await faithful_csv(billing), "le-1", usage_source="allocation")
    ready = ExportReady(await reconcile_export(open_export(data, "file usage.csv"), billing))
    obs = Calls()
    out = await diagnose(Subject(org_id=ORG), WINDOW, NOW, sources(billing), obs, org_scope=(ORG, None),
                         export=ready)
    d = out.diagnosis
    assert obs.steps[-2:] == ["Usage export", "Reconciliation checklist"]
    assert [s.name for s in out.steps][-2:] == ["export", "reconciliation"]
    assert {s.of for s in out.steps} == {7}
    [f] = [f for f in d.findings if f.check == "export_mismatch"]
    assert f.app_instance_id == "ai-1" and f.owning_layer == "ui_export"
    assert "ui_export" in {fu.owning_layer for fu in d.follow_ups}
    assert d.sources.export == "ok" and d.export is not None and d.export.lines == 8
    assert not any(c.check == "export_mismatch" for c in d.corrections)
    export_calls = [c for step, c, _ in obs.calls if step == "export"]
    assert {c.kind for c in export_calls} == {"export", "sql"}
    read = next(c for c in export_calls if c.kind == "export")
    assert read.params["sha256"] == d.export.sha256 and read.params["months"] == ["2026-11"]
    jsonschema.validate(json.loads(d.model_dump_json()), SCHEMA)


async def test_billing_export_url_is_fetched_for_the_windows_months(billing: PostgresBillingReader) -> None:
    async with ExportApiStandIn(token="t0k") as api:
        api.put(ORG, "2026-11", (await faithful_csv(billing)).encode())
        fetch = ExportFetch(api.template, "t0k", timeout_s=5)
        out = await diagnose(Subject(org_id=ORG), WINDOW, NOW, sources(billing), Calls(), org_scope=(ORG, None),
                             export=fetch)
        assert [r.params["month"] for r in api.requests] == ["2026-11"]
        assert out.diagnosis.sources.export == "ok"
        assert not [f for f in out.diagnosis.findings if f.check == "export_mismatch"]
        api.fail(503)
        out = await diagnose(Subject(org_id=ORG), WINDOW, NOW, sources(billing), Calls(), org_scope=(ORG, None),
                             export=fetch)
        d = out.diagnosis
        assert d.sources.export == "unavailable" and d.complete is False and d.export is None
        assert any("export:" in n and "503" in n for n in d.notes)


def test_months_of_a_window() -> None:
    assert months_of(datetime(2026, 10, 28, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC)) == ["2026-10", "2026-11"]
    assert months_of(datetime(2026, 11, 3, tzinfo=UTC), datetime(2026, 11, 3, 5, tzinfo=UTC)) == ["2026-11"]
    assert months_of(datetime(2026, 12, 25, tzinfo=UTC), datetime(2027, 1, 2, tzinfo=UTC)) == ["2026-12", "2027-01"]
