"""``recon`` with the report and retention commands, as a real process.

Until bot/cli.py wires them, this runs the CLI's parser with the two commands added the
way the one-line wiring does (``add_parser(sub)`` / ``run(settings, args)``), with the
CLI's exit codes; once wired, the tests run ``python -m bot`` itself (``RECON``).
"""

from __future__ import annotations

import argparse
import sys


def cli_has(command: str) -> bool:
    from bot.cli import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return command in sub.choices


def main(argv: list[str]) -> int:
    from bot.cli import EXIT_BAD_INPUT, EXIT_FAIL, build_parser
    from bot.commands import report, retention
    from bot.errors import BadInput, ConfigError, ReconError
    from bot.settings import Settings

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    if "report" not in sub.choices:
        report.add_parser(sub)
    if "retention" not in sub.choices:
        retention.add_parser(sub)
    args = parser.parse_args(argv)
    try:
        if args.command == "report":
            return report.run(Settings(), args)
        if args.command == "retention":
            return retention.run(Settings(), args)
    except (BadInput, ConfigError) as exc:
        print(f"recon: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except ReconError as exc:
        print(f"recon: {exc}", file=sys.stderr)
        return EXIT_FAIL
    from bot.cli import main as cli_main

    return cli_main(argv)


def command() -> list[str]:
    """The argv prefix that runs ``recon``."""
    if cli_has("report") and cli_has("retention"):
        return [sys.executable, "-m", "bot"]
    return [sys.executable, "-m", "tests.report.cli_runner"]


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
