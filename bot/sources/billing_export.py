"""The usage export's reads of the billing database (rule 8), a part of
``PostgresBillingReader``: the entries of an org's months streamed typed (the sample
export) or as canonical texts (the reconciliation), and the typed lines of a few."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from bot.diagnosis.model import Window
from bot.sources.billing_sql import QUERIES, SOURCE
from bot.sources.copy_rows import CopyRows, month_runs
from bot.sources.protocols import Fetched, SourceCall

# COPY takes no parameters: asyncpg quotes them into the text, comments included, where a
# value's newline would end a comment; so the query goes without its comment lines.
_EXPORT_LINES = "\n".join(ln for ln in QUERIES["export_lines"].splitlines() if not ln.lstrip().startswith("--"))


class ExportReads:
    """The export's reads; a ``PostgresBillingReader`` supplies its session and its runner."""

    if TYPE_CHECKING:
        def _session(self, name: str) -> AbstractAsyncContextManager[Any]: ...

        async def _run(self, name: str, make: Callable[..., Any], args: tuple[Any, ...], params: dict[str, Any],
                       window: Window | None) -> Fetched[Any]: ...

    async def scan_export_entries(
        self, org_id: str, project_id: str | None, months: Sequence[str],
        sink: Callable[[Sequence[Sequence[Any]]], None], *, batch: int = 20_000,
    ) -> SourceCall:
        """Every ledger entry of the org (and project) posted in these months, as the usage
        export shows it (``export_entries.sql``), handed to ``sink`` a batch at a time
        through a server-side cursor: an org-month of a million entries is never a list."""
        name, months, t0, started_at = "export_entries", sorted(set(months)), time.perf_counter(), datetime.now(UTC)
        if months:
            runs = month_runs(months)
            lo, hi = runs[0][0], runs[-1][1]
            async with self._session(name) as conn:
                cursor = await conn.cursor(QUERIES[name], org_id, project_id, lo, hi, months)
                while rows := await cursor.fetch(batch):
                    sink(rows)
        return _scan_call(name, org_id, project_id, months, started_at, t0)

    async def scan_export_lines(
        self, org_id: str, project_id: str | None, months: Sequence[str],
        sink: Callable[[Sequence[Sequence[Any]]], None],
    ) -> SourceCall:
        """The same entries as ``scan_export_entries``, each as ``(ledger_entry_id, canonical
        text)`` (``export_lines.sql``, ``bot.export.canon``): what rule 8 compares. Streamed
        by ``COPY (…) TO STDOUT``, which the server writes as fast as it reads (in parallel
        workers when it plans them; a cursor never does), one query per run of consecutive
        months; ``sink`` gets the rows of each chunk as it arrives."""
        name, months, t0, started_at = "export_lines", sorted(set(months)), time.perf_counter(), datetime.now(UTC)
        async with self._session(name) as conn:
            for lo, hi in month_runs(months):
                rows = CopyRows(sink)
                await conn.copy_from_query(_EXPORT_LINES, org_id, project_id, lo, hi, output=rows.feed)
                rows.close()
        return _scan_call(name, org_id, project_id, months, started_at, t0)

    async def export_entries_by_id(self, org_id: str, ledger_entry_ids: Sequence[str]) -> Fetched[tuple[Any, ...]]:
        """The typed lines (``export_entries.sql``'s columns) of the named entries of the org."""
        ids = sorted(set(ledger_entry_ids))
        return await self._run("export_entries_by_id", lambda *row: tuple(row), (org_id, ids),
                               {"org_id": org_id, "ledger_entry_ids": len(ids)}, None)


def _scan_call(name: str, org_id: str, project_id: str | None, months: list[str], started_at: datetime,
               t0: float) -> SourceCall:
    return SourceCall(source=SOURCE, kind="sql", request=name,
                      params={"org_id": org_id, "project_id": project_id, "months": months},
                      started_at=started_at, duration_ms=(time.perf_counter() - t0) * 1000.0, via="postgres")
