"""``recon``: the command line. ``recon --help`` and ``recon COMMAND --help`` explain."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime

from pydantic import ValidationError

from bot import logs
from bot.errors import BadInput, ConfigError, ReconError, StoreError
from bot.settings import Settings

EXIT_OK, EXIT_FAIL, EXIT_BAD_INPUT, EXIT_INCOMPLETE = 0, 1, 2, 3

DESCRIPTION = """\
recon: correlation-first diagnosis of GPU-cloud billing incidents.

It reads logs (Loki), traces (Tempo) and the billing database, runs the runbook's
checks (missing usage, wrong source, wrong anchor, ledger mismatch, control-plane
drift, duplicate charge), and records what it saw. It never writes to billing data.
"""

EPILOG = """\
configuration (environment or .env): DATABASE_URL, BILLING_DATABASE_URL, LOKI_URL,
LOKI_TENANT, TEMPO_URL, TEMPO_TENANT, BILLING_EXPORT_URL, RECON_EVIDENCE_DIR, RECON_DATA_DIR
(see README).

examples:
  recon demo                                   seed the demo platform and diagnose it
  recon diagnose corr-7f3a9c --since 48h       diagnose one correlation id
  recon diagnose - --app-instance ai-ray-0007  diagnose an app instance
  recon diagnose --org org-acme --since 30d    a dispute with no correlation id: every instance of the org
  recon diagnose --org org-acme --export usage.csv   ... and the customer's usage export (rule 8)
  recon diagnose corr-7f3a9c --json | jq .findings
  recon serve --port 3000                      the Slack bot (see README, Connect to Slack)
"""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        print(f"recon: error: {message}", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="recon", description=DESCRIPTION, epilog=EPILOG,
                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-v", "--verbose", action="count", default=0, help="more log output on stderr (-vv: debug)")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    from bot.commands import diagnose_args

    diagnose_args.add_parser(sub)
    m = sub.add_parser("demo", help="seed a demo platform into the embedded PostgreSQL and diagnose it",
                       description="Seed a demo platform (billing rows with known drift, logs, traces) into the "
                                   "embedded PostgreSQL, run a diagnosis end to end, show the Slack thread as it "
                                   "would read, and say where the timeline and evidence were recorded.")
    m.add_argument("--seed", type=int, default=7, help="scenario seed (default 7)")

    sv = sub.add_parser("serve", help="run the bot: Slack, alert webhooks, report pages, health",
                        description="Run the bot. HTTP mode (SLACK_BOT_TOKEN + SLACK_SIGNING_SECRET) serves "
                                    "POST /slack/events; Socket Mode when SLACK_APP_TOKEN is set. Also /healthz "
                                    "and /readyz. Several processes on one store share the work.")
    sv.add_argument("--host", default="0.0.0.0", help="address to listen on (default 0.0.0.0)")  # noqa: S104
    sv.add_argument("--port", type=int, default=3000, help="port (default 3000; 0 picks a free one)")

    sub.add_parser("migrate", help="bring the store's schema up to date (also done at start)")
    from bot.commands import report, retention

    report.add_parser(sub)
    retention.add_parser(sub)
    from bot.commands import verify

    verify.add_parser(sub)
    from bot.commands import corrections

    corrections.add_parser(sub)
    return p


def _setup_logging(verbosity: int, settings_level: str | None, fmt: str = "text") -> None:
    """Quiet by default on the terminal (warnings and errors); -v, -vv or
    RECON_LOG_LEVEL ask for more."""
    level = logging.WARNING
    if verbosity == 1:
        level = logging.INFO
    elif verbosity >= 2:
        level = logging.DEBUG
    elif settings_level and isinstance(logging.getLevelName(settings_level.upper()), int):
        level = logging.getLevelName(settings_level.upper())
    logs.setup(level, fmt)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_BAD_INPUT
    try:
        settings = Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        print(f"recon: bad setting {'.'.join(str(x) for x in first['loc'])}: {first['msg']}", file=sys.stderr)
        return EXIT_BAD_INPUT
    serving = args.command == "serve"
    level = settings.log_level if ("log_level" in settings.model_fields_set or serving) else None
    fmt = settings.log_format or ("json" if serving else "text")
    _setup_logging(args.verbose, level, fmt)
    try:
        if args.command == "diagnose":
            from bot.commands.diagnose import run_diagnose

            return asyncio.run(run_diagnose(settings, args))
        if args.command == "demo":
            from bot.commands.demo import run_demo

            return asyncio.run(run_demo(settings, seed=args.seed))
        if args.command == "serve":
            from bot.commands.serve import serve

            return asyncio.run(serve(settings, args.host, args.port))
        if args.command == "verify":
            from bot.commands import verify

            return asyncio.run(verify.run(settings, args))
        if args.command in ("report", "retention", "corrections"):
            from bot.commands import corrections, report, retention

            cmd = {"report": report, "retention": retention, "corrections": corrections}[args.command]
            return int(cmd.run(settings, args))
        if args.command == "migrate":
            return asyncio.run(_migrate(settings))
    except BadInput as exc:
        print(f"recon: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except ConfigError as exc:
        print(f"recon: configuration: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except ReconError as exc:
        print(f"recon: {exc}", file=sys.stderr)
        return EXIT_FAIL
    except KeyboardInterrupt:
        print("recon: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader went away (recon … | head): not an error of ours
        with contextlib.suppress(OSError):
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115
        return EXIT_OK
    parser.print_help()
    return EXIT_BAD_INPUT


async def _migrate(settings: Settings) -> int:
    from bot.store.db import connect_pool, known_migrations, migrate, redact_url
    from bot.store.opening import store_url

    url = await store_url(settings)
    pool = await connect_pool(url, max_size=2)
    try:
        applied = await migrate(pool)
    finally:
        await pool.close()
    latest = known_migrations()[-1]
    if applied:
        print(f"applied {len(applied)} migration(s): {', '.join(applied)}")
    else:
        print(f"store already up to date (version {latest.version})")
    print(f"store: {redact_url(url)}")
    return EXIT_OK


def now_utc() -> datetime:
    return datetime.now(UTC)


def dump_json(obj: object) -> str:
    return json.dumps(obj, ensure_ascii=False, indent=2, default=str)


__all__ = ["StoreError", "main"]
