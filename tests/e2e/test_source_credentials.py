"""``recon diagnose`` against a Loki and a Tempo that want credentials, given in the URL
(``https://user:token@…``) and as settings: the stand-ins receive them, and nothing
recon prints, stores or shows on the report page contains them, when the sources answer
and when they fail."""

from __future__ import annotations

import asyncio
import base64
import os
import sys
from pathlib import Path

import asyncpg

from bot.report.data import load_report
from bot.report.render import render_html
from bot.store.db import connect_pool
from tests.conftest import LoadedPlatform
from tests.constants import NOW
from tests.standins.loki import LokiStandIn
from tests.standins.tempo import TempoStandIn

USER = "tenant-4711"
LOKI_TOKEN = "glc_loki-sEcReT-e2e-0001"
TEMPO_TOKEN = "tempo-sEcReT-e2e-0002"
SECRETS = (LOKI_TOKEN, TEMPO_TOKEN, base64.b64encode(f"{USER}:{LOKI_TOKEN}".encode()).decode())


async def diagnose(env: dict[str, str], cid: str) -> str:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("LOKI_", "TEMPO_", "RECON_", "SLACK_"))}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "diagnose", cid, "--until", NOW.isoformat(), env={**base, **env},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode in (0, 3), out.decode()
    return out.decode()


async def everything_stored(store_url: str) -> str:
    conn = await asyncpg.connect(store_url)
    try:
        tables = [r["table_name"] for r in await conn.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")]
        return "\n".join([await conn.fetchval(f'SELECT coalesce(string_agg(t::text, E\'\\n\'), \'\') FROM "{t}" t')
                          for t in tables])
    finally:
        await conn.close()


async def report_pages(store_url: str) -> str:
    pool = await connect_pool(store_url, min_size=1, max_size=2)
    try:
        ids = [r["incident_id"] for r in await pool.fetch("SELECT incident_id FROM incidents")]
        pages = []
        for iid in ids:
            report = await load_report(pool, iid)
            assert report is not None
            pages.append(render_html(report))
        return "\n".join(pages)
    finally:
        await pool.close()


async def test_credentials_reach_the_sources_and_nothing_shown_or_stored(
        demo_loaded: LoadedPlatform, store_url: str, tmp_path: Path) -> None:
    platform = demo_loaded.platform
    cid = platform.disputed_correlation_id
    assert cid
    async with LokiStandIn() as loki, TempoStandIn(traces=[platform.spans]) as tempo:
        for e in platform.logs:
            loki.push(dict(e.labels) or {"service": e.service, "env": "prod"}, dict(e.line), e.ts)
        loki.authorization = "Basic " + base64.b64encode(f"{USER}:{LOKI_TOKEN}".encode()).decode()
        tempo.authorization = f"Bearer {TEMPO_TOKEN}"
        env = {"DATABASE_URL": store_url, "BILLING_DATABASE_URL": demo_loaded.billing_url,
               "RECON_DATA_DIR": str(tmp_path / "data"), "RECON_SOURCE_TIMEOUT": "5",
               "LOKI_URL": loki.url.replace("http://", f"http://{USER}:{LOKI_TOKEN}@"),
               "TEMPO_URL": tempo.url, "TEMPO_BEARER_TOKEN": TEMPO_TOKEN}
        answered = await diagnose(env, cid)
        assert loki.requests and tempo.requests, answered
        assert {r.header("Authorization") for r in loki.requests} == {loki.authorization}
        assert {r.header("Authorization") for r in tempo.requests} == {tempo.authorization}
        # now they fail: one echoes the credentials in its error, the other refuses them
        loki.fail(500, f"upstream: bad credentials {USER}:{LOKI_TOKEN}")
        tempo.authorization = "Bearer another"
        failed = await diagnose(env, cid)
    assert "HTTP 500" in failed and "HTTP 401" in failed, failed
    shown = "\n".join([answered, failed, await everything_stored(store_url), await report_pages(store_url)])
    assert f"127.0.0.1:{loki.port}" in shown  # where it went is recorded, without the credentials
    assert "bad credentials ***" in shown  # the error is kept, scrubbed (a user in a URL may be a token)
    for secret in SECRETS:
        assert secret not in shown
