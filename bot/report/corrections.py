"""The report's Corrections section: the incident's sealed correction batches, and the
latest diagnosis's proposals while they are not sealed (pure; rows from
``bot/report/sql/report_correction_*.sql``, read in the report's snapshot).

Which proposals show as "proposed, not approved" follows ``recon corrections``: those of
the latest diagnosis when no sealed batch came from its run. Each sealed batch's digest
is recomputed from its stored rows (``bot.diagnosis.corrections.batch_digest``), so the
page says whether the rows shown are the ones that were approved.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bot.diagnosis.corrections import batch_digest, proposal_rows
from bot.diagnosis.model import Diagnosis

NEVER_APPLIED = "recon proposes these corrections and never applies them: it never writes to the billing database"


@dataclass(frozen=True, slots=True)
class SealedBatch:
    """An approved corrections batch as sealed, with its rows in order."""

    batch_id: int
    prompt_id: int
    run_id: int | None
    digest: str
    approved_by: tuple[str, ...]
    votes: tuple[tuple[str, str], ...]  # (user, vote), by user
    sealed_at: datetime
    rows: tuple[dict[str, Any], ...]
    verified: bool  # the digest recomputed from the rows matches, and the row count too


@dataclass(frozen=True, slots=True)
class ReportCorrections:
    batches: tuple[SealedBatch, ...] = field(default=())
    proposed: tuple[dict[str, Any], ...] = field(default=())  # not approved (module doc)
    proposed_run_id: int | None = None

    @property
    def empty(self) -> bool:
        return not self.batches and not self.proposed


def _votes(value: Any) -> tuple[tuple[str, str], ...]:
    if isinstance(value, str):  # jsonb as text (another codec)
        value = json.loads(value)
    if not isinstance(value, Mapping):
        return ()
    return tuple(sorted((str(u), str(v)) for u, v in value.items()))


def report_corrections(
    incident_id: str,
    batches: Sequence[Mapping[str, Any]],
    rows: Sequence[Mapping[str, Any]],
    diagnosis: Diagnosis | None,
    latest_run_id: int | None,
) -> ReportCorrections:
    """The section from the batch rows, their correction rows (with ``batch_id``, in
    position order) and the latest parsed diagnosis."""
    by_batch: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by_batch[int(r["batch_id"])].append(dict(r))
    sealed = []
    for b in batches:
        kept = proposal_rows(by_batch.get(int(b["batch_id"]), []))
        run_id = None if b["run_id"] is None else int(b["run_id"])
        sealed.append(SealedBatch(
            batch_id=int(b["batch_id"]), prompt_id=int(b["prompt_id"]), run_id=run_id, digest=str(b["digest"]),
            approved_by=tuple(b["approved_by"] or ()), votes=_votes(b["votes"]), sealed_at=b["sealed_at"],
            rows=tuple(kept),
            verified=len(kept) == int(b["row_count"]) and batch_digest(incident_id, run_id, kept) == b["digest"],
        ))
    proposed: list[dict[str, Any]] = []
    if diagnosis is not None and all(s.run_id != latest_run_id for s in sealed):
        proposed = proposal_rows([c.model_dump() for c in diagnosis.corrections])
    return ReportCorrections(batches=tuple(sealed), proposed=tuple(proposed),
                             proposed_run_id=latest_run_id if proposed else None)


__all__ = ["NEVER_APPLIED", "ReportCorrections", "SealedBatch", "report_corrections"]
