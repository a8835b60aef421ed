"""Sealed correction batches: the approved proposals of a corrections prompt.

A batch is written once, in the transaction that approves its prompt (``seal``), and
never changed: there is no UPDATE path, and migration 014's triggers refuse UPDATE and
DELETE on its rows (only the retention command deletes, with ``recon.allow_purge``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from bot.diagnosis.corrections import batch_digest, proposal_rows
from bot.errors import StoreError
from bot.sqlfiles import Queries
from bot.store.db import Conn, NamedQueries

Q = Queries("bot.store", "sql")
_DB_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError)


@dataclass(frozen=True, slots=True)
class CorrectionBatch:
    batch_id: int
    incident_id: str
    prompt_id: int
    run_id: int | None
    digest: str
    approved_by: list[str]
    votes: dict[str, str]
    row_count: int
    sealed_at: datetime


async def seal(conn: Conn, *, incident_id: str, prompt_id: int, scope: Mapping[str, Any],
               approved_by: Sequence[str], votes: Mapping[str, str]) -> int:
    """Write the batch of an approved corrections prompt; returns its id. Refuses a scope
    whose digest does not match its proposals (it would seal something not proposed)."""
    rows = proposal_rows(scope.get("corrections") or [])
    run_id = scope.get("run_id")
    digest = batch_digest(incident_id, run_id, rows)
    if digest != scope.get("digest"):
        raise StoreError(f"corrections prompt {prompt_id}: its proposals do not match their digest")
    batch_id: int = await conn.fetchval(Q["correction_batch_seal"], incident_id, prompt_id, run_id, digest,
                                        list(approved_by), dict(votes), len(rows))
    cols = [[r[k] for r in rows] for k in ("action", "org_id", "project_id", "usage_record_id",
                                           "reverses_entry_id", "amount_minor", "currency", "correlation_id",
                                           "check", "reason")]
    await conn.execute(Q["correction_batch_rows_add"], batch_id, list(range(len(rows))), *cols)
    return batch_id


class CorrectionStore(NamedQueries):
    async def batches_of(self, incident_id: str) -> list[CorrectionBatch]:
        return [CorrectionBatch(**dict(r)) for r in await self._q("correction_batches_of", "fetch", incident_id)]

    async def by_prompt(self, prompt_id: int) -> CorrectionBatch | None:
        row = await self._q("correction_batch_by_prompt", "fetchrow", prompt_id)
        return CorrectionBatch(**dict(row)) if row is not None else None

    async def rows(self, batch_id: int) -> list[dict[str, Any]]:
        return [dict(r) for r in await self._q("correction_batch_rows_of", "fetch", batch_id)]

    async def latest_run(self, incident_id: str) -> tuple[int, dict[str, Any]] | None:
        row = await self._q("incident_latest_run", "fetchrow", incident_id)
        if row is None or row["result"] is None:
            return None
        return int(row["run_id"]), dict(row["result"])

    async def verify(self, batch: CorrectionBatch) -> bool:
        """Recompute the batch's digest from its stored rows."""
        rows = await self.rows(batch.batch_id)
        return len(rows) == batch.row_count and batch_digest(batch.incident_id, batch.run_id, rows) == batch.digest
