"""The Markdown export against golden files, and ``recon report`` as a real process.

Golden files: ``tests/fixtures/report/*.md``. After an intended change of the export,
regenerate them with ``UPDATE_GOLDEN=1 scripts/test tests/report/test_export.py`` and
review the diff. What varies from run to run is masked before comparing: the incident id
(random), the times the store's clock recorded (after the scenario's NOW) and the temp
folder of the offline evidence.
"""

from __future__ import annotations

import os
import re
import subprocess
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from bot.report.data import load_report
from bot.report.render import render_html, render_markdown
from bot.store.store import Store
from tests.constants import NOW
from tests.report.cli_runner import command
from tests.report.conftest import Recorded

GOLDEN = Path(__file__).resolve().parents[1] / "fixtures" / "report"
_TS = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}")


def normalise(text: str, incident_id: str, *paths: Path) -> str:
    text = text.replace(incident_id, "INC-<id>")
    for p in paths:
        text = text.replace(str(p), "<tmp>")
    cutoff = NOW + timedelta(days=1)  # the scenario's times are at or before NOW; the clock's after

    def mask(m: re.Match[str]) -> str:
        return "<recorded>" if datetime.strptime(m.group(0), "%Y-%m-%d %H:%M:%S") > cutoff.replace(tzinfo=None) \
            else m.group(0)

    return _TS.sub(mask, text)


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return
    assert path.exists(), f"no golden file {path}: run with UPDATE_GOLDEN=1 to create it"
    want = path.read_text(encoding="utf-8")
    assert text == want, f"{name} differs from the golden file (UPDATE_GOLDEN=1 regenerates it; review the diff)"


async def test_markdown_export_of_a_recorded_diagnosis(store: Store, recorded: Recorded) -> None:
    r = await load_report(store.pool, recorded.incident_id)
    assert r is not None
    md = render_markdown(r)
    assert render_markdown(r) == md  # deterministic
    again = await load_report(store.pool, recorded.incident_id)
    assert again is not None and render_markdown(again) == md
    check_golden("demo_incident.md", normalise(md, recorded.incident_id, recorded.evidence_dir))


async def test_markdown_export_of_an_incident_without_runs(store: Store) -> None:
    inc = await store.create_incident(title="Billing diagnosis: app_instance_id ai-<b>|x", origin="cli",
                                      app_instance_id="ai-ray-0007")
    r = await load_report(store.pool, inc.incident_id)
    assert r is not None
    md = render_markdown(r)
    assert "ai-&lt;b&gt;\\|x" in md  # table-safe
    check_golden("empty_incident.md", normalise(md, inc.incident_id))
    assert "No finished diagnosis yet" in render_html(r)


def run(args: list[str], store_url: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("LOKI_", "TEMPO_", "RECON_", "SLACK_"))}
    env = {**base, "DATABASE_URL": store_url, "RECON_DATA_DIR": str(tmp_path / "data"),
           "RECON_PUBLIC_URL": "https://recon.example.com"}
    return subprocess.run([*command(), *args], env=env, capture_output=True, text=True, timeout=120, check=False,
                          cwd=Path(__file__).resolve().parents[2])


async def test_recon_report_command(store: Store, store_url: str, recorded: Recorded, tmp_path: Path) -> None:
    iid = recorded.incident_id
    p = run(["report", iid, "--format", "md"], store_url, tmp_path)
    assert p.returncode == 0, p.stderr
    r = await load_report(store.pool, iid)
    assert r is not None
    assert p.stdout == render_markdown(r)

    out = tmp_path / "out" / "report.html"
    p = run(["report", iid, "--format", "html", "--output", str(out)], store_url, tmp_path)
    assert p.returncode == 0, p.stderr
    assert p.stdout == "" and "wrote" in p.stderr
    html = out.read_text()
    assert html.startswith("<!DOCTYPE html>") and iid in html and "<svg" in html

    p = run(["report", iid, "--link"], store_url, tmp_path)
    assert p.returncode == 0, p.stderr
    assert re.fullmatch(rf"https://recon\.example\.com/incidents/{iid}\?token=[A-Za-z0-9_.-]+\n", p.stdout)


@pytest.mark.parametrize(("incident", "message"), [("INC-20261120-nosuch", "no incident"),
                                                    ("not-an-id", "not an incident id")])
async def test_recon_report_unknown_or_bad_id_exits_2(store_url: str, tmp_path: Path, incident: str,
                                                      message: str) -> None:
    p = run(["report", incident], store_url, tmp_path)
    assert p.returncode == 2 and message in p.stderr and p.stdout == ""
