"""How a diagnosis is given a usage export: read before the run, or fetched during it.

- ``ExportReady``: a file given to the CLI (or stdin), or shared in Slack, read and
  reconciled *before* the diagnosis starts, so a malformed file is refused (exit 2, a
  reply, a modal error) before anything is recorded: nothing is half-read.
- ``ExportFetch``: ``BILLING_EXPORT_URL`` is set; the "Usage export" step fetches the
  export of the scope's org (and project) for the window's months. Its failures are the
  export source's (``sources.export`` unavailable or error), not the person's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from bot.errors import ConfigError
from bot.export.csvfile import DEFAULT_MAX_BYTES, open_export
from bot.export.run import ExportOutcome, reconcile_export
from bot.sources.protocols import BillingReader


@dataclass(frozen=True, slots=True)
class ExportReady:
    outcome: ExportOutcome


@dataclass(frozen=True, slots=True)
class ExportFetch:
    template: str
    token: str | None = None
    timeout_s: float = 60.0
    max_bytes: int = DEFAULT_MAX_BYTES


ExportRequest = ExportReady | ExportFetch


@dataclass(frozen=True, slots=True)
class GivenExport:
    """An export a person gave, not yet read: a file, stdin, a file shared in Slack."""

    source: Path | bytes | IO[bytes]
    origin: str  # "file usage.csv", "stdin", "slack file F123"
    max_bytes: int = DEFAULT_MAX_BYTES


async def read_given_export(source: Path | bytes | IO[bytes], origin: str, billing: BillingReader | None, *,
                            org_id: str | None = None, project_id: str | None = None,
                            max_bytes: int = DEFAULT_MAX_BYTES, cover: Sequence[str] = ()) -> ExportReady:
    """An export given by a person (a file, stdin, a file shared in Slack), read and
    reconciled now, before anything is recorded. ``org_id``: the scope's org (a line of
    another org is refused); ``project_id``: the scope's project (a file whose lines are all
    of it is taken as that project's export, else as the whole org's); ``cover``: months it
    must cover (a verification's window). Raises ``ExportInvalid`` (bad input, naming the line
    and column) or ``ConfigError`` (no billing database to compare it with)."""
    if billing is None:
        raise ConfigError("a usage export is compared with the billing database: set BILLING_DATABASE_URL")
    export = open_export(source, origin, max_bytes=max_bytes, expected_org=org_id)
    try:
        return ExportReady(await reconcile_export(export, billing, cover=cover, narrow_to=project_id))
    finally:
        export.close()


def months_of(start: datetime, end: datetime) -> list[str]:
    """The UTC months ``YYYY-MM`` that [start, end) touches."""
    a, b = start.astimezone(UTC), end.astimezone(UTC)
    y, m = a.year, a.month
    out: list[str] = []
    while (y, m) <= (b.year, b.month) and len(out) < 24:
        if not (b.day == 1 and b.hour == 0 and b.minute == 0 and b.second == 0 and (y, m) == (b.year, b.month)
                and (y, m) != (a.year, a.month)):
            out.append(f"{y:04d}-{m:02d}")
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return out
