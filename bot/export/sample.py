"""What the billing UI's "Export usage" would give: a faithful export of an org's months,
written from the billing database with the same query the reconciliation reads.

For the demo (which then plants a UI/export drift in it), the tests and the benchmarks;
recon itself never needs to write an export.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from typing import Any, TextIO

from bot.export.lines import COLUMNS, ExportLine, expected_line, show
from bot.sources.protocols import BillingReader


def line_fields(line: ExportLine) -> list[str]:
    """A line's values as the export prints them (empty for none)."""
    return ["" if v is None else show(v) for v in line]


async def write_export(billing: BillingReader, out: TextIO, org_id: str, months: Sequence[str],
                       project_id: str | None = None, columns: Sequence[str] = COLUMNS) -> int:
    """Write the faithful export (header, then one line per entry) to ``out``; the line count."""
    w = csv.writer(out, lineterminator="\r\n")
    w.writerow(columns)
    order = [COLUMNS.index(c) for c in columns]
    n = 0

    def sink(rows: Sequence[Sequence[Any]]) -> None:
        nonlocal n
        for row in rows:
            f = line_fields(expected_line(row))
            w.writerow([f[i] for i in order])
        n += len(rows)

    await billing.scan_export_entries(org_id, project_id, months, sink)
    return n
