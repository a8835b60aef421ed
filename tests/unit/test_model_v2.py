"""schema_version 2 of the diagnosis document, and reading documents stored as version 1."""

from __future__ import annotations

import json
from importlib import resources

import jsonschema

from bot.diagnosis.model import Diagnosis, ExportRead, Subject, WindowOut

SCHEMA = json.loads(resources.files("bot.contract").joinpath("diagnosis.schema.json").read_text())
WINDOW = {"start": "2026-11-01T00:00:00Z", "end": "2026-11-08T00:00:00Z"}


def test_a_new_document_is_version_2_and_valid() -> None:
    d = Diagnosis(subject=Subject(org_id="org-acme", project_id="prj-1"), window=WindowOut.model_validate(WINDOW))
    doc = json.loads(d.model_dump_json())
    jsonschema.validate(doc, SCHEMA)
    assert doc["schema_version"] == 2
    assert doc["sources"]["export"] == "not_given"
    assert doc["export"] is None
    assert doc["subject"] == {"correlation_id": None, "app_instance_id": None, "org_id": "org-acme",
                              "project_id": "prj-1"}


def test_an_export_read_is_valid() -> None:
    d = Diagnosis(subject=Subject(correlation_id="c-1"), window=WindowOut.model_validate(WINDOW),
                  export=ExportRead(origin="file usage.csv", org_id="org-acme", months=["2026-11"], lines=3,
                                    sha256="0" * 64))
    jsonschema.validate(json.loads(d.model_dump_json()), SCHEMA)


def test_a_stored_version_1_document_reads_as_version_2() -> None:
    v1 = {"schema_version": 1, "subject": {"correlation_id": "c-1", "app_instance_id": None}, "window": WINDOW,
          "sources": {"loki": "ok", "tempo": "error", "billing": "ok"}, "complete": False}
    d = Diagnosis.model_validate(v1)
    assert d.schema_version == 2
    assert d.sources.tempo == "error"
    assert d.sources.export == "not_given"
    assert d.export is None
