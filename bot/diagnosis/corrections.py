"""Proposed corrections as a batch: their canonical serialisation, digest and totals (pure).

The digest of a batch is ``sha256(canonical_proposals(incident_id, run_id, rows))`` in
lower-case hex, where the canonical serialisation is the UTF-8 bytes of the JSON object

    {"corrections": [<row>, …], "incident_id": <text>, "run_id": <integer or null>}

written with its keys sorted at every level, no whitespace (separators ``,`` and
``:``), non-ASCII characters as themselves (not ``\\u`` escapes), and each ``<row>`` an
object of exactly the ten ``FIELDS`` (absent ids as ``null``, ``amount_minor`` an
integer), the rows in the order the diagnosis proposed them. The approvers and their
votes are *not* inside the digest: it names what was proposed, is shown on the prompt
before anyone votes, and the sealed batch records who approved it next to it — so the
sealed digest equal to the prompt's proves the approved batch is the one proposed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

FIELDS = ("action", "org_id", "project_id", "usage_record_id", "reverses_entry_id", "amount_minor", "currency",
          "correlation_id", "check", "reason")


def proposal_rows(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Each row reduced to ``FIELDS`` (a Correction's model_dump, or a stored row)."""
    out = []
    for r in rows:
        row = {k: r.get(k) for k in FIELDS}
        row["amount_minor"] = int(r["amount_minor"])
        out.append(row)
    return out


def canonical_proposals(incident_id: str, run_id: int | None, rows: Sequence[Mapping[str, Any]]) -> bytes:
    doc = {"corrections": proposal_rows(rows), "incident_id": incident_id, "run_id": run_id}
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def batch_digest(incident_id: str, run_id: int | None, rows: Sequence[Mapping[str, Any]]) -> str:
    return hashlib.sha256(canonical_proposals(incident_id, run_id, rows)).hexdigest()


def totals(rows: Sequence[Mapping[str, Any]]) -> dict[tuple[str, str], tuple[int, int]]:
    """``(currency, action) -> (count, sum of amount_minor)``, sorted."""
    acc: dict[tuple[str, str], tuple[int, int]] = {}
    for r in rows:
        key = (str(r.get("currency")), str(r.get("action")))
        n, total = acc.get(key, (0, 0))
        acc[key] = (n + 1, total + int(r.get("amount_minor") or 0))
    return dict(sorted(acc.items()))
