"""Retention: a dry run changes nothing; a real run removes exactly the incidents past
retention with everything recorded about them (despite the append-only triggers), and
never one with an active freeze."""

from __future__ import annotations

import os
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.diagnosis.model import Window
from bot.report.retention import TABLES, purge
from bot.sources.protocols import SourceCall
from bot.store.store import Store
from tests.report.cli_runner import command
from tests.report.conftest import Recorded, add_approvals

LATER = datetime.now(UTC) + timedelta(days=500)  # "now" for the purge: everything recorded today is old


async def small_incident(store: Store, cid: str, *, status: str = "closed") -> str:
    inc = await store.create_incident(title=f"t {cid}", origin="cli", correlation_id=cid)
    run_id = await store.start_run(inc.incident_id, {"correlation_id": cid}, Window(LATER, LATER))
    await store.add_timeline_event(inc.incident_id, run_id, "note", "recon", "d", {}, "recon")
    await store.add_evidence(inc.incident_id, run_id, "logs", "before", SourceCall("loki", "logql", "{}"),
                             [{"a": 1}], 10)
    if status != "open":
        await store.set_incident_status(inc.incident_id, status)  # type: ignore[arg-type]
    return inc.incident_id


async def table_counts(store: Store) -> dict[str, int]:
    return {t: int(await store.pool.fetchval(f"SELECT count(*) FROM {t}")) for t in TABLES}


async def test_dry_run_then_purge(store: Store, recorded: Recorded) -> None:
    closed = await small_incident(store, "c-closed")
    stale_open = await small_incident(store, "c-open", status="open")
    recovered = await small_incident(store, "c-recovered", status="recovered")
    frozen_open = await small_incident(store, "c-frozen", status="open")
    await add_approvals(store, frozen_open, [("org-a", "prj-a", "ai-1")], message_ts="1763640001.000200")
    recent = await small_incident(store, "c-recent")
    await store.pool.execute("UPDATE incidents SET updated_at = $2 WHERE incident_id = $1", recent,
                             LATER - timedelta(days=10))
    # the recorded diagnosis: closed, its freeze lifted, with prompts, votes, audit and evidence
    await store.pool.execute("UPDATE freezes SET status = 'lifted', lifted_at = now(), lifted_by = ARRAY['U0BOB']"
                             " WHERE freeze_id = $1", recorded.freeze_id)
    await store.set_incident_status(recorded.incident_id, "closed")
    job_id = await store.pool.fetchval("INSERT INTO jobs (kind, dedup_key, incident_id) VALUES ('x', 'k', $1)"
                                       " RETURNING job_id", recorded.incident_id)

    before = await table_counts(store)
    dry = await purge(store.pool, days=400, now=LATER, dry_run=True)
    assert await table_counts(store) == before  # nothing changed
    gone = {closed, stale_open, recovered, recorded.incident_id}
    assert set(dry.incident_ids) == gone and dry.dry_run
    assert dry.kept_frozen == (frozen_open,)

    real = await purge(store.pool, days=400, now=LATER)
    assert set(real.incident_ids) == gone and real.counts == dry.counts
    after = await table_counts(store)
    assert {t: before[t] - after[t] for t in TABLES} == real.counts
    assert real.counts["incidents"] == 4 and real.counts["freezes"] == 1 and real.counts["approval_events"] == 6
    assert real.counts["evidence"] == 3 + 17 and real.counts["timeline_events"] > 3
    left = {r["incident_id"] for r in await store.pool.fetch("SELECT incident_id FROM incidents")}
    assert left == {frozen_open, recent}
    for t in ("timeline_events", "evidence", "diagnosis_runs", "approval_prompts", "freezes"):
        assert {r["incident_id"] for r in await store.pool.fetch(f"SELECT DISTINCT incident_id FROM {t}")} <= left
    # the frozen incident keeps everything, its freeze still active
    assert await store.pool.fetchval("SELECT status FROM freezes WHERE incident_id = $1", frozen_open) == "active"
    assert len(await store.timeline(frozen_open)) == 1 and len(await store.evidence(frozen_open)) == 1
    # jobs stay, no longer naming the incident; the append-only guard is back on
    assert await store.pool.fetchval("SELECT incident_id FROM jobs WHERE job_id = $1", job_id) is None
    assert await store.pool.fetchval("SELECT current_setting('recon.allow_purge', true)") in ("", None)
    # a second run finds nothing more
    again = await purge(store.pool, days=400, now=LATER)
    assert again.incident_ids == [] and again.kept_frozen == (frozen_open,)


async def test_nothing_is_purged_when_recent(store: Store, recorded: Recorded) -> None:
    before = await table_counts(store)
    result = await purge(store.pool, days=400)
    assert result.incident_ids == [] and await table_counts(store) == before


def run(args: list[str], store_url: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("LOKI_", "TEMPO_", "RECON_", "SLACK_"))}
    env = {**base, "DATABASE_URL": store_url, "RECON_DATA_DIR": str(tmp_path / "data")}
    return subprocess.run([*command(), *args], env=env, capture_output=True, text=True, timeout=120, check=False,
                          cwd=Path(__file__).resolve().parents[2])


async def test_recon_retention_command(store: Store, store_url: str, tmp_path: Path) -> None:
    old = (await store.create_incident(title="old", origin="cli", correlation_id="c-old")).incident_id
    keep = await small_incident(store, "c-keep")  # its timeline event was recorded today: active
    await store.pool.execute(
        "UPDATE incidents SET updated_at = now() - interval '500 days' WHERE incident_id = ANY($1)", [old, keep])
    p = run(["retention", "--days", "400", "--dry-run"], store_url, tmp_path)
    assert p.returncode == 0, p.stderr
    assert "would remove 1 incident(s)" in p.stdout and old in p.stdout and keep not in p.stdout
    assert "dry run: nothing deleted" in p.stdout
    assert await store.get_incident(old) is not None

    p = run(["retention", "--days", "400"], store_url, tmp_path)
    assert p.returncode == 0, p.stderr
    assert "removed 1 incident(s)" in p.stdout and old in p.stdout
    assert any(line.split() == ["incidents", "1"] for line in p.stdout.splitlines())
    assert await store.get_incident(old) is None and await store.get_incident(keep) is not None

    p = run(["retention", "--days", "0"], store_url, tmp_path)
    assert p.returncode == 2 and "at least 1" in p.stderr
