"""``recon serve``: the bot. Slack over HTTP (or Socket Mode), health, and the workers
that run accepted jobs. SIGTERM or Ctrl-C: stop taking work, let running jobs finish
within the grace period, release the rest to other processes, exit."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import sys
from collections.abc import Callable

from aiohttp import web

from bot.errors import ConfigError
from bot.flows.approvals import ApprovalFlow
from bot.gcpause import freeze_long_lived
from bot.report.retention_schedule import retention_loop
from bot.server.app import build_app
from bot.server.services import running_services
from bot.settings import Settings

log = logging.getLogger(__name__)


def dump_tasks() -> None:
    """SIGUSR2: log where every task is waiting (for an operator chasing a stuck shutdown)."""
    import io

    for task in asyncio.all_tasks():
        buf = io.StringIO()
        task.print_stack(limit=12, file=buf)
        log.warning("task %s:\n%s", task.get_name(), buf.getvalue())


async def expire_prompts(flow: ApprovalFlow, stop: asyncio.Event, every_s: float = 30.0) -> None:
    """Approval prompts past their expiry say so (each expired by exactly one process)."""
    while not stop.is_set():
        try:
            n = await flow.expire_due()
            if n:
                log.info("%d approval prompt(s) expired", n)
        except Exception:
            log.exception("expiring approval prompts failed; trying again later")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every_s)


def check_credentials(settings: Settings) -> str:
    """The mode to run in, or ConfigError naming what is missing."""
    missing = []
    if settings.slack_bot_token is None:
        missing.append("SLACK_BOT_TOKEN")
    if settings.slack_app_token is None and settings.slack_signing_secret is None:
        missing.append("SLACK_SIGNING_SECRET (or SLACK_APP_TOKEN for Socket Mode)")
    if missing:
        raise ConfigError(f"recon serve needs {' and '.join(missing)}; see README, 'Connect to Slack'")
    if settings.slack_app_token is not None and not settings.slack_app_token.get_secret_value().startswith("xapp-"):
        raise ConfigError("SLACK_APP_TOKEN must be an app-level token (xapp-…)")
    return "socket" if settings.slack_app_token is not None else "http"


async def serve(settings: Settings, host: str, port: int, *, on_ready: Callable[[str], None] | None = None,
                stop: asyncio.Event | None = None) -> int:
    """Run until SIGTERM/SIGINT (or ``stop``). ``on_ready`` gets the base URL once listening."""
    mode = check_credentials(settings)
    if stop is None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
        with contextlib.suppress(NotImplementedError, RuntimeError, AttributeError):
            loop.add_signal_handler(signal.SIGUSR2, dump_tasks)
    async with running_services(settings) as svc:
        app = build_app(svc)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound = runner.addresses[0] if runner.addresses else (host, port)
        if not settings.public_url:  # report links point at this server
            shown = socket.gethostname() if bound[0] in ("0.0.0.0", "::") else bound[0]  # noqa: S104
            settings.public_url = f"http://{shown}:{bound[1]}"
        freeze_long_lived()  # what start-up built lives as long as the process
        worker_task = asyncio.create_task(svc.worker.run(), name="worker")
        sweeper = asyncio.create_task(expire_prompts(svc.approvals, stop), name="prompt-expiry")
        retention = asyncio.create_task(retention_loop(svc.store.pool, settings, stop), name="retention")
        socket_handler = None
        if mode == "socket":
            from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

            assert settings.slack_app_token is not None
            socket_handler = AsyncSocketModeHandler(svc.bolt, settings.slack_app_token.get_secret_value())
            await socket_handler.connect_async()  # type: ignore[no-untyped-call]
        print(f"recon serving on http://{bound[0]}:{bound[1]} ({'Socket Mode' if mode == 'socket' else 'HTTP mode'}"
              f", worker {svc.worker.owner})", file=sys.stderr, flush=True)
        log.info("serving on %s:%s in %s mode", bound[0], bound[1], mode)
        if on_ready is not None:
            on_ready(f"http://{bound[0]}:{bound[1]}")
        await stop.wait()
        log.info("shutting down: no new work; running jobs get %.0f s", settings.shutdown_grace_s)
        if socket_handler is not None:
            await socket_handler.close_async()  # type: ignore[no-untyped-call]
        await site.stop()
        await svc.worker.stop()
        await worker_task
        for task in (sweeper, retention):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await runner.cleanup()
    log.info("stopped")
    return 0
