"""``recon demo`` on the embedded default, from nothing, twice."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from bot.store.embedded import stop_embedded_sync


@pytest.fixture
def data_dir(fast_tmp: Path) -> Iterator[Path]:
    d = fast_tmp / "recon-data"
    yield d
    stop_embedded_sync(d / "pgdata")


def demo(data_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "BILLING_DATABASE_URL", "LOKI_URL", "TEMPO_URL") and not k.startswith("RECON_")}
    env["RECON_DATA_DIR"] = str(data_dir)
    return subprocess.run([sys.executable, "-m", "bot", "demo"], env=env, capture_output=True, text=True,
                          timeout=180, check=False)


async def test_demo_runs_twice_and_records_the_run(data_dir: Path) -> None:
    first = demo(data_dir)
    assert first.returncode == 0, first.stderr
    out = first.stdout
    assert "started" in out and "reply in thread" in out and "Drift found" in out
    m = re.search(r"Planted drift on the disputed call's instances: (\d+); found: (\d+)\n", out)
    assert m and int(m.group(1)) >= 2 and m.group(1) == m.group(2), out[-2000:]
    # the customer's export, with a UI/export drift planted, read in the "Usage export" step
    assert "Usage export*" in out and "shown as allocation, stored as app_runtime" in out
    m = re.search(r"Planted export drift: (\d+) lines; found: (\d+)\n", out)
    assert m and int(m.group(1)) == 3 and m.group(1) == m.group(2), out[-2000:]
    inc = re.search(r"incident (INC-\d{8}-[a-z0-9]{6}), diagnosis run (\d+): (\d+) timeline events, (\d+) evidence",
                    out)
    assert inc, out[-2000:]
    url = re.search(r"look:  psql '([^']+)'", out)
    assert url
    conn = await asyncpg.connect(url.group(1))
    try:
        n_ev = await conn.fetchval("select count(*) from evidence where incident_id = $1", inc.group(1))
        kinds = {r["kind"] for r in await conn.fetch("select distinct kind from evidence where incident_id = $1",
                                                     inc.group(1))}
        timeline = await conn.fetch("select type, correlation_id, trace_id from timeline_events "
                                    "where incident_id = $1", inc.group(1))
        run = await conn.fetchrow("select status, complete, scope, result from diagnosis_runs where run_id = $1",
                                  int(inc.group(2)))
    finally:
        await conn.close()
    assert n_ev == int(inc.group(4)) and kinds == {"logql", "trace", "sql", "summary", "proposal", "export"}
    assert all(t["correlation_id"] for t in timeline) and any(t["trace_id"] for t in timeline)
    assert run["status"] == "done" and run["complete"] is True and run["scope"] == "project"

    second = demo(data_dir)
    assert second.returncode == 0, second.stderr
    assert "reused the running server" in second.stdout
    inc2 = re.search(r"incident (INC-\d{8}-[a-z0-9]{6})", second.stdout.split("What was recorded")[1])
    assert inc2 and inc2.group(1) != inc.group(1)  # the re-seeded demo opens a fresh incident
