"""How a diagnosis is given a usage export: read before the run, or fetched during it.

- ``ExportReady``: a file given to the CLI (or stdin), or shared in Slack, read and
  reconciled *before* the diagnosis starts, so a malformed file is refused (exit 2, a
  reply, a modal error) before anything is recorded: nothing is half-read.
- ``ExportFetch``: ``BILLING_EXPORT_URL`` is set; the "Usage export" step fetches the
  export of the scope's org (and project) for the window's months. Its failures are the
  export source's (``sources.export`` unavailable or error), not the person's.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from bot.export.csvfile import DEFAULT_MAX_BYTES
from bot.export.run import ExportOutcome


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
