"""Disputes as they arrive, through ``recon diagnose`` as a person runs it: a correlation
id, an app instance, an org, an org's project, each with and without the customer's
usage export; a malformed export refused (exit 2, its line and column named) with
nothing recorded; an export on standard input; an unknown org and an empty one."""

from __future__ import annotations

import csv
import io
import json
import subprocess
from datetime import timedelta
from pathlib import Path

import asyncpg
import pytest

from tests.conftest import LoadedPlatform
from tests.constants import NOW
from tests.e2e.test_cli import RECON, faithful_export, run, validate


@pytest.fixture
def env(demo_loaded: LoadedPlatform, store_url: str, tmp_path: Path) -> dict[str, str]:
    return {"DATABASE_URL": store_url, "BILLING_DATABASE_URL": demo_loaded.billing_url,
            "RECON_EVIDENCE_DIR": str(demo_loaded.evidence), "RECON_DATA_DIR": str(tmp_path / "data")}


def disputed(p: LoadedPlatform) -> tuple[str, str, str, str]:
    """The disputed call, one of its instances, and that instance's org and project."""
    cid = p.platform.disputed_correlation_id
    assert cid
    aid = p.platform.subject_instances(cid)[0]
    inst = next(i for i in p.platform.instances if i.app_instance_id == aid)
    return cid, aid, inst.org_id, inst.project_id


def plant(path: Path, project: str | None = None) -> str:
    """One app_runtime usage line shown as allocation (rule 8 (a)); its ledger entry id."""
    rows = list(csv.DictReader(path.open(newline="", encoding="utf-8")))
    line = next(r for r in rows if r["usage_source"] == "app_runtime" and project in (None, r["project_id"]))
    line["usage_source"] = "allocation"
    with path.open("w", newline="", encoding="utf-8") as out:
        w = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\r\n")
        w.writeheader()
        w.writerows(rows)
    return line["ledger_entry_id"]


async def recorded(store_url: str) -> tuple[int, int]:
    conn = await asyncpg.connect(store_url)
    try:
        if await conn.fetchval("select to_regclass('incidents')") is None:
            return 0, 0
        return (await conn.fetchval("select count(*) from incidents"),
                await conn.fetchval("select count(*) from diagnosis_runs"))
    finally:
        await conn.close()


@pytest.mark.parametrize("kind", ["correlation", "instance", "org", "project"])
@pytest.mark.parametrize("with_export", [False, True])
async def test_each_subject_with_and_without_an_export(kind: str, with_export: bool, env: dict[str, str],
                                                       demo_loaded: LoadedPlatform, tmp_path: Path,
                                                       store_url: str) -> None:
    cid, aid, org, project = disputed(demo_loaded)
    args = {"correlation": [cid], "instance": ["-", "--app-instance", aid], "org": ["--org", org],
            "project": ["--org", org, "--project", project]}[kind]
    planted = None
    if with_export:
        path = await faithful_export(demo_loaded, org, tmp_path / "usage.csv",
                                     project if kind == "project" else None)
        planted = plant(path)
        args = [*args, "--export", str(path)]
    p = run(["diagnose", *args, "--json"], env)
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    validate(doc)
    if kind in ("org", "project"):
        assert doc["subject"] == {"correlation_id": None, "app_instance_id": None, "org_id": org,
                                  "project_id": project if kind == "project" else None}
        assert "org " + org in p.stderr  # "Diagnosing org …"
    mismatches = [f for f in doc["findings"] if f["check"] == "export_mismatch"]
    if with_export:
        assert doc["sources"]["export"] == "ok" and doc["export"]["org_id"] == org
        assert [planted] == [lid for f in mismatches for lid in f["ledger_entry_ids"]]
        assert "Usage export" in p.stderr
    else:
        assert doc["sources"]["export"] == "not_given" and doc["export"] is None and not mismatches
    assert await recorded(store_url) == (1, 1)


def _bad(text: str, n: int, column: str, value: str) -> str:
    """The export's text with line ``n`` (the header is 1) given ``value`` in ``column``."""
    rows = list(csv.reader(io.StringIO(text)))
    rows[n - 1][rows[0].index(column)] = value
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows(rows)
    return out.getvalue()


@pytest.mark.parametrize(("column", "value", "says"), [
    ("amount_minor", "12.5x", "line 4, column amount_minor"),
    ("billing_month", "2026-13", "line 4, column billing_month"),
    ("control_plane_component", "maybe", "line 4, column control_plane_component"),
    ("org_id", "org-someone-else", "line 4, column org_id"),
])
async def test_a_malformed_export_exits_2_naming_line_and_column_and_records_nothing(
        column: str, value: str, says: str, env: dict[str, str], demo_loaded: LoadedPlatform, tmp_path: Path,
        store_url: str) -> None:
    cid, _, org, _ = disputed(demo_loaded)
    path = await faithful_export(demo_loaded, org, tmp_path / "usage.csv")
    path.write_bytes(_bad(path.read_bytes().decode(), 4, column, value).encode())
    for args in (["--org", org], [cid]):
        p = run(["diagnose", *args, "--export", str(path), "--json"], env)
        assert p.returncode == 2, p.stderr
        assert p.stdout == "" and len(p.stderr.strip().splitlines()) == 1 and says in p.stderr, p.stderr
    assert await recorded(store_url) == (0, 0)


async def test_a_short_line_and_a_binary_file_are_refused_too(env: dict[str, str], demo_loaded: LoadedPlatform,
                                                              tmp_path: Path, store_url: str) -> None:
    _, _, org, _ = disputed(demo_loaded)
    path = await faithful_export(demo_loaded, org, tmp_path / "usage.csv")
    lines = path.read_bytes().split(b"\r\n")
    lines[2] = b",".join(lines[2].split(b",")[:5])
    path.write_bytes(b"\r\n".join(lines))
    p = run(["diagnose", "--org", org, "--export", str(path)], env)
    assert p.returncode == 2 and "line 3" in p.stderr and "fields where the header has" in p.stderr, p.stderr
    path.write_bytes(b"\xff\xfe\x00garbage")
    p = run(["diagnose", "--org", org, "--export", str(path)], env)
    assert p.returncode == 2 and "not UTF-8" in p.stderr
    assert await recorded(store_url) == (0, 0)


async def test_an_export_on_standard_input(env: dict[str, str], demo_loaded: LoadedPlatform, tmp_path: Path) -> None:
    _, _, org, _ = disputed(demo_loaded)
    path = await faithful_export(demo_loaded, org, tmp_path / "usage.csv")
    planted = plant(path)
    p = subprocess.run([*RECON, "diagnose", "--org", org, "--export", "-", "--json", "--until", NOW.isoformat()],
                       env={**env, "PATH": "/usr/bin:/bin"}, input=path.read_text(encoding="utf-8"),
                       capture_output=True, text=True, timeout=120, check=False)
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert doc["export"]["origin"] == "stdin"
    assert [planted] == [lid for f in doc["findings"] if f["check"] == "export_mismatch"
                         for lid in f["ledger_entry_ids"]]


async def test_unknown_org_is_bad_input_and_an_idle_org_a_clean_answer(
        env: dict[str, str], demo_loaded: LoadedPlatform, store_url: str) -> None:
    p = run(["diagnose", "--org", "org-nobody"], env)
    assert p.returncode == 2 and "unknown org org-nobody" in p.stderr and p.stdout == ""
    _, _, org, _ = disputed(demo_loaded)
    long_ago = (NOW - timedelta(days=60)).isoformat()
    p = subprocess.run([*RECON, "diagnose", "--org", org, "--since", "1d", "--until", long_ago],
                       env=env, capture_output=True, text=True, timeout=120, check=False)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == f"no app instances of org {org} ran in the window"
    assert await recorded(store_url) == (0, 0)


@pytest.mark.parametrize("args", [["--project", "prj-x"], ["corr-1", "--org", "org-a"],
                                  ["-", "--app-instance", "ai-1", "--org", "org-a"], ["--org", "org a"]])
def test_subject_arguments_that_do_not_go_together(args: list[str], env: dict[str, str]) -> None:
    p = run(["diagnose", *args], env)
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1, p.stderr
