"""Running ``recon serve`` for tests: in-process (a task) or as real processes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bot.commands.serve import serve
from bot.scenario import Platform, build_platform, demo_spec
from bot.settings import Settings
from tests.standins.slack import SlackStandIn
from tests.standins.slack_requests import DEFAULT_SIGNING_SECRET

STEPS = 6


def live_platform() -> Platform:
    """The demo platform as of now (a diagnosis through Slack ends its window now)."""
    return build_platform(demo_spec(), now=datetime.now(UTC).replace(microsecond=0), seed=7)


def bot_env(store_url: str, billing_url: str, evidence: Path, slack: SlackStandIn, **extra: str) -> dict[str, str]:
    return {
        "DATABASE_URL": store_url,
        "BILLING_DATABASE_URL": billing_url,
        "RECON_EVIDENCE_DIR": str(evidence),
        "SLACK_BOT_TOKEN": "xoxb-recon-test-token",
        "SLACK_SIGNING_SECRET": DEFAULT_SIGNING_SECRET,
        "SLACK_API_URL": slack.url.rstrip("/"),
        "RECON_JOB_LEASE_S": "3",
        "RECON_WORKER_POLL_S": "0.5",
        "RECON_SHUTDOWN_GRACE_S": "2",
        **extra,
    }


@dataclass(slots=True)
class InProcessBot:
    url: str
    settings: Settings
    stop: asyncio.Event
    task: asyncio.Task[int]


@contextlib.asynccontextmanager
async def bot_in_process(env: Mapping[str, str]) -> AsyncIterator[InProcessBot]:
    settings = Settings(**env)  # type: ignore[arg-type]
    stop = asyncio.Event()
    ready: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(serve(settings, "127.0.0.1", 0, on_ready=ready.set_result, stop=stop))
    done, _ = await asyncio.wait([task, ready], timeout=30, return_when=asyncio.FIRST_COMPLETED)
    if ready not in done:
        if task.done():
            task.result()  # raises what went wrong
        raise TimeoutError("recon serve did not become ready in 30 s")
    try:
        yield InProcessBot(ready.result(), settings, stop, task)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


@dataclass(slots=True)
class BotProcess:
    proc: subprocess.Popen[str]
    url: str


async def start_bot_process(env: Mapping[str, str], log_path: Path) -> BotProcess:
    """A real ``recon serve`` process; its URL is read from the line it prints when ready."""
    full = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "RECON_", "LOKI_", "TEMPO_"))}
    full.update(env)
    full["RECON_LOG_LEVEL"] = "INFO"
    log = log_path.open("w")
    proc = subprocess.Popen([sys.executable, "-m", "bot", "serve", "--host", "127.0.0.1", "--port", "0"],
                            env=full, stdout=log, stderr=subprocess.STDOUT, text=True)
    pattern = re.compile(r"recon serving on (http://\S+) ")
    for _ in range(300):
        m = pattern.search(log_path.read_text())
        if m:
            return BotProcess(proc, m.group(1))
        if proc.poll() is not None:
            raise RuntimeError(f"recon serve exited {proc.returncode}:\n{log_path.read_text()}")
        await asyncio.sleep(0.1)  # waiting on another process's output: nothing to await
    proc.kill()
    raise TimeoutError(f"recon serve did not start:\n{log_path.read_text()}")


async def jobs_settled(store_url: str, count: int, timeout: float = 30.0) -> list[dict[str, object]]:
    """Wait until ``count`` jobs have ended (done, or failed for good): the bot NOTIFYs
    ``recon_jobs_done`` as each one ends. Returns the jobs."""
    import asyncpg

    from bot.store.jobs import DONE_CHANNEL

    conn = await asyncpg.connect(store_url)
    changed = asyncio.Event()
    await conn.add_listener(DONE_CHANNEL, lambda *_: changed.set())
    try:
        async with asyncio.timeout(timeout):
            while True:
                changed.clear()
                rows = await conn.fetch("select job_id, kind, status, attempts from jobs order by job_id")
                if sum(1 for r in rows if r["status"] in ("done", "failed")) >= count:
                    return [dict(r) for r in rows]
                await changed.wait()
    finally:
        await conn.close()


async def store_rows(store_url: str, sql: str) -> list[dict[str, object]]:
    """The rows of one query against the bot's store."""
    import asyncpg

    conn = await asyncpg.connect(store_url)
    try:
        return [dict(r) for r in await conn.fetch(sql)]
    finally:
        await conn.close()
