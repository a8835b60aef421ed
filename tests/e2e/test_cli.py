"""``recon diagnose`` and ``recon demo`` as a person runs them: real processes, real
exit codes, the JSON validated against diagnosis.schema.json."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from importlib import resources
from pathlib import Path
from typing import Any

import asyncpg
import jsonschema
import pytest

from tests.conftest import LoadedPlatform, faithful_export
from tests.constants import NOW
from tests.standins import dead_url

RECON = [sys.executable, "-m", "bot"]


def schema() -> dict[str, Any]:
    return json.loads(resources.files("bot.contract").joinpath("diagnosis.schema.json").read_text())


def validate(doc: dict[str, Any]) -> None:
    jsonschema.Draft202012Validator(schema(), format_checker=jsonschema.FormatChecker()).validate(doc)


def run(args: list[str], env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    if args and args[0] == "diagnose":
        args = [*args, "--until", NOW.isoformat()]
    base = {k: v for k, v in os.environ.items() if not k.startswith(("LOKI_", "TEMPO_", "RECON_", "SLACK_"))}
    base.pop("BILLING_DATABASE_URL", None)
    return subprocess.run([*RECON, *args], env={**base, **env}, capture_output=True, text=True, timeout=timeout,
                          check=False)


@pytest.fixture
def env(demo_loaded: LoadedPlatform, store_url: str, tmp_path: Path) -> dict[str, str]:
    return {"DATABASE_URL": store_url, "BILLING_DATABASE_URL": demo_loaded.billing_url,
            "RECON_EVIDENCE_DIR": str(demo_loaded.evidence), "RECON_DATA_DIR": str(tmp_path / "data")}


def test_json_validates_and_exit_0(env: dict[str, str], demo_loaded: LoadedPlatform) -> None:
    cid = demo_loaded.platform.disputed_correlation_id
    assert cid
    p = run(["diagnose", cid, "--json"], env)
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)  # nothing else on stdout
    validate(doc)
    assert doc["complete"] is True and doc["freeze_recommended"] is True
    assert doc["subject"] == {"correlation_id": cid, "app_instance_id": None, "org_id": None, "project_id": None}
    assert {f["check"] for f in doc["findings"]} == {"missing_usage", "wrong_source", "duplicate_charge"}
    assert "Logs by correlation id" in p.stderr  # progress goes to stderr with --json


def test_terminal_rendering_shows_steps_findings_and_impact(env: dict[str, str], demo_loaded: LoadedPlatform) -> None:
    cid = demo_loaded.platform.disputed_correlation_id
    assert cid
    p = run(["diagnose", cid], env)
    assert p.returncode == 0, p.stderr
    out = p.stdout
    for text in ("[1] Logs by correlation id", "[6] Reconciliation checklist", "Findings (3)", "Customer impact",
                 "freeze recommended: YES", "recorded as incident INC-"):
        assert text in out


@pytest.mark.parametrize("bad", ['abc"} | line_format "x', "a" * 129, "", "-", "cid with space"])
def test_bad_input_exits_2_with_one_line(env: dict[str, str], bad: str) -> None:
    p = run(["diagnose", bad, "--json"], env)
    assert p.returncode == 2
    assert p.stdout == ""
    assert len(p.stderr.strip().splitlines()) == 1 and p.stderr.startswith("recon: ")


def test_bad_since_exits_2(env: dict[str, str]) -> None:
    p = run(["diagnose", "corr-1", "--since", "seven days"], env)
    assert p.returncode == 2 and "duration" in p.stderr


def test_unknown_id_gives_scope_none_and_says_what_was_searched(env: dict[str, str]) -> None:
    p = run(["diagnose", "corr-nobody-knows", "--json"], env)
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    validate(doc)
    assert doc["scope"] == "none" and doc["findings"] == [] and doc["identifiers"]["app_instance_ids"] == []
    assert any("Loki" in s for s in doc["searched"]) and any("usage_records" in s for s in doc["searched"])


def test_unreachable_loki_and_tempo_exit_3_with_billing_findings(env: dict[str, str],
                                                                 demo_loaded: LoadedPlatform) -> None:
    cid = demo_loaded.platform.disputed_correlation_id
    assert cid
    p = run(["diagnose", cid, "--json"], {**env, "LOKI_URL": dead_url(), "TEMPO_URL": dead_url(),
                                          "RECON_SOURCE_TIMEOUT": "2"})
    assert p.returncode == 3, p.stderr
    doc = json.loads(p.stdout)
    validate(doc)
    assert doc["complete"] is False
    assert doc["sources"] == {"loki": "unavailable", "tempo": "unavailable", "billing": "ok",
                              "export": "not_given"}
    assert set(doc["stages"].values()) == {"unknown"}
    # the billing database alone still shows the drift it can see
    assert {"wrong_source", "duplicate_charge"} <= {f["check"] for f in doc["findings"]}


def test_app_instance_alone(env: dict[str, str], demo_loaded: LoadedPlatform) -> None:
    aid = next(e.app_instance_id for e in demo_loaded.platform.expected if e.check == "duplicate_charge")
    p = run(["diagnose", "-", "--app-instance", aid, "--json"], env)
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    validate(doc)
    assert doc["subject"]["app_instance_id"] == aid and doc["subject"]["correlation_id"] is None
    assert "duplicate_charge" in {f["check"] for f in doc["findings"]}


def test_help_explains_commands() -> None:
    p = run(["--help"], {})
    assert p.returncode == 0
    for word in ("diagnose", "demo", "migrate", "BILLING_DATABASE_URL"):
        assert word in p.stdout
    p = run(["diagnose", "--help"], {})
    assert "exit codes" in p.stdout and "--since" in p.stdout


async def test_verify_after_applying_the_proposed_corrections(env: dict[str, str], demo_loaded: LoadedPlatform,
                                                              store_url: str, tmp_path: Path) -> None:
    """Diagnose one instance with a duplicate charge; verification says not recovered;
    the approved procedure posts exactly the corrections recon proposed; verification
    then says recovered and marks the incident so."""
    aid = next(e.app_instance_id for e in demo_loaded.platform.expected if e.check == "duplicate_charge")
    p = run(["diagnose", "-", "--app-instance", aid, "--json"], env)
    doc = json.loads(p.stdout)
    assert {f["check"] for f in doc["findings"]} == {"duplicate_charge"}
    corrections = doc["corrections"]
    assert [c["action"] for c in corrections] == ["reverse_debit"] and corrections[0]["reverses_entry_id"]
    conn = await asyncpg.connect(store_url)
    try:
        incident = await conn.fetchval("select incident_id from incidents where app_instance_id = $1", aid)
    finally:
        await conn.close()
    until = ["--until", NOW.isoformat()]
    v = subprocess.run([*RECON, "verify", incident, "--json", *until], env={**os.environ, **env},
                       capture_output=True, text=True, timeout=120, check=False)
    assert v.returncode == 4, v.stderr
    before = json.loads(v.stdout)
    assert not before["recovered"] and [c["key"] for c in before["criteria"] if not c["holds"]] == ["separation",
                                                                                                      "charges"]
    assert before["criteria"][0]["state"] == "not_verified" and "--export usage.csv" in before["criteria"][0]["how"]
    billing = await asyncpg.connect(demo_loaded.billing_url)
    try:
        for i, c in enumerate(corrections):  # what the approved correction procedure would post
            await billing.execute(
                "insert into billing.ledger_entries (ledger_entry_id, org_id, project_id, usage_record_id, direction,"
                " kind, amount_minor, currency, reverses_entry_id, idempotency_key, correlation_id, posted_at)"
                " values ($1, $2, $3, null, 'credit', 'reversal', $4, $5, $6, $7, $8, $9)",
                f"le-fix-{i}", c["org_id"], c["project_id"], c["amount_minor"], c["currency"], c["reverses_entry_id"],
                f"fix-{i}", c["correlation_id"], NOW - timedelta(minutes=5))
    finally:
        await billing.close()
    usage_csv = await faithful_export(demo_loaded, doc["identifiers"]["org_ids"][0], tmp_path / "usage.csv")
    v = subprocess.run([*RECON, "verify", incident, "--json", *until, "--export", str(usage_csv)],
                       env={**os.environ, **env}, capture_output=True, text=True, timeout=120, check=False)
    assert v.returncode == 0, v.stdout + v.stderr
    after = json.loads(v.stdout)
    assert after["recovered"] and after["before_checks"] == {"duplicate_charge": 1} and after["after_checks"] == {}
    conn = await asyncpg.connect(store_url)
    try:
        status = await conn.fetchval("select status from incidents where incident_id = $1", incident)
        phases = {r["phase"] for r in await conn.fetch("select distinct phase from evidence where incident_id = $1",
                                                       incident)}
        kinds = [r["type"] for r in await conn.fetch(
            "select type from timeline_events where incident_id = $1 and type = 'verification'", incident)]
    finally:
        await conn.close()
    assert status == "recovered" and phases == {"before", "after"} and len(kinds) == 2
