"""The arguments of ``recon diagnose`` (kept apart from the command, which imports the
whole flow: ``recon --help`` stays quick)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_parser(sub: Any) -> argparse.ArgumentParser:
    d: argparse.ArgumentParser = sub.add_parser(
        "diagnose", help="run the correlation-first diagnosis once, from the terminal",
        description="Run the whole correlation-first diagnosis once, without Slack: of a correlation id, of an "
                    "app instance, or (a dispute with no correlation id) of every app instance of an org or "
                    "project that ran in the window. With --export, the customer's usage export is read first "
                    "and checked against the ledger (rule 8).\n\n"
                    "exit codes: 0 complete (or no instance of the org ran in the window); 3 a source was "
                    "unavailable (the partial result is still printed, complete: false); 2 bad input (a "
                    "malformed export, named by line and column, or an unknown org: nothing is recorded); "
                    "1 recon itself failed.",
        epilog="examples:\n"
               "  recon diagnose corr-7f3a9c --since 48h\n"
               "  recon diagnose - --app-instance ai-ray-0007 --export usage.csv\n"
               "  recon diagnose --org org-acme --since 30d\n"
               "  recon diagnose --org org-acme --project prj-acme-ml --until 2026-11-20T12:00:00Z\n"
               "  recon diagnose --org org-acme --export usage.csv --json | jq .findings\n"
               "  curl -s \"$EXPORT_URL\" | recon diagnose --org org-acme --export -",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    d.add_argument("correlation_id", metavar="CORRELATION_ID", nargs="?",
                   help="the correlation id from the ticket or error envelope; '-' with --app-instance; "
                        "none with --org")
    d.add_argument("--app-instance", metavar="ID", help="diagnose from this app instance (as alert triage does)")
    d.add_argument("--org", metavar="ORG",
                   help="diagnose every app instance of this org that ran in the window (no correlation id)")
    d.add_argument("--project", metavar="PROJECT", help="with --org: only this project's app instances")
    d.add_argument("--since", default="7d", metavar="DURATION",
                   help="how far back the window reaches, e.g. 90m, 48h, 7d (default 7d; the window ends now)")
    d.add_argument("--until", metavar="TIMESTAMP",
                   help="end the window at this RFC 3339 time instead of now (replaying a past incident); "
                        "hours within 2 h before it count as still pending")
    d.add_argument("--export", metavar="FILE",
                   help="the customer's usage export (CSV, as the billing UI's 'Export usage' gives it; '-' "
                        "reads standard input), checked line by line against the ledger")
    d.add_argument("--json", action="store_true",
                   help="print one JSON document (diagnosis.schema.json) on stdout, nothing else")
    d.add_argument("--evidence", type=Path, metavar="DIR",
                   help="offline evidence folder (logcli jsonl exports, Tempo trace JSON) used when "
                        "LOKI_URL / TEMPO_URL are unset")
    d.add_argument("--no-record", action="store_true", help="do not record the run in the store")
    return d
