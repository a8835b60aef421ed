"""Usage against ledger per app instance, from the evidence rows the latest finished run
recorded (usage rows and ledger entries, deduplicated by id); see ``bot.report.data``.

- ``usage_rows``: usage rows of the instance that recon saw;
- ``charged_minor``: ``usage`` debits naming those rows, less the ``reversal`` credits
  that reverse such a debit (refunds and promo credits are left out, as the checks do);
- ``expected_minor``: ``charged_minor`` less the net customer impact the diagnosis found
  for the instance (overcharged − undercharged).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bot.diagnosis.model import Diagnosis
from bot.store.store import EvidenceRecord

SCREENED_QUERIES = frozenset({"screen_usage"})
Row = Mapping[str, Any]
Key = tuple[str | None, str, str, str]  # instance, org, project, currency
Ident = tuple[str | None, str, str]  # instance, org, project


@dataclass(frozen=True, slots=True)
class InstanceCharge:
    """Usage against ledger for one app instance and currency (see the module doc)."""

    app_instance_id: str | None
    org_id: str
    project_id: str
    currency: str
    usage_rows: int
    charged_minor: int
    expected_minor: int

    @property
    def difference_minor(self) -> int:
        """Positive: the customer pays more than expected."""
        return self.charged_minor - self.expected_minor


@dataclass(frozen=True, slots=True)
class UsageVsLedger:
    instances: tuple[InstanceCharge, ...]
    complete: bool
    notes: tuple[str, ...]


@dataclass(slots=True)
class _Seen:
    """The usage rows and ledger entries the evidence holds, and how far it can be trusted."""

    usage: dict[str, Row] = field(default_factory=dict)
    ledger: dict[str, Row] = field(default_factory=dict)
    complete: bool = True
    notes: list[str] = field(default_factory=list)

    def gap(self, note: str) -> None:
        self.complete = False
        self.notes.append(note)


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _seen(records: Sequence[EvidenceRecord]) -> _Seen:
    seen = _Seen()
    for e in records:
        if e.kind != "sql":
            continue
        kinds_here = set()
        for r in (r for r in e.rows if isinstance(r, dict)):
            if "usage_record_id" in r and "quantity" in r and "period_start" in r:
                seen.usage.setdefault(str(r["usage_record_id"]), r)
                kinds_here.add("usage")
            elif "ledger_entry_id" in r and "amount_minor" in r:
                seen.ledger.setdefault(str(r["ledger_entry_id"]), r)
                kinds_here.add("ledger")
        if e.truncated and kinds_here:
            seen.gap(f"{e.request}: {len(e.rows)} of {e.row_count} rows recorded (row cap)")
        if e.request in SCREENED_QUERIES:
            seen.gap(f"{e.request}: the billing database screened the usage rows; only the doubtful ones were read")
        if e.error and e.source == "billing":
            seen.gap(f"{e.request}: {e.error}")
    return seen


def _charged(seen: _Seen) -> dict[tuple[str, str], int]:
    """(usage row id, currency) -> minor units: usage debits on known rows, less their reversals."""
    debit_of: dict[str, str] = {}  # ledger entry id -> usage row id
    charged: dict[tuple[str, str], int] = defaultdict(int)
    unmatched = 0
    for lid, entry in seen.ledger.items():
        if entry.get("kind") == "usage" and entry.get("direction") == "debit":
            uid = entry.get("usage_record_id")
            if uid is not None and str(uid) in seen.usage:
                debit_of[lid] = str(uid)
                charged[(str(uid), str(entry.get("currency") or ""))] += _int(entry.get("amount_minor"))
            else:
                unmatched += 1
    for entry in seen.ledger.values():
        if entry.get("kind") == "reversal" and entry.get("direction") == "credit":
            target = entry.get("reverses_entry_id")
            if target is not None and str(target) in debit_of:
                uid = debit_of[str(target)]
                charged[(uid, str(entry.get("currency") or ""))] -= _int(entry.get("amount_minor"))
    if unmatched:
        seen.notes.append(f"{unmatched} usage debit(s) name no usage row recon saw; they are not in the chart")
    return charged


def _ident(u: Row) -> Ident:
    inst = u.get("app_instance_id")
    return (str(inst) if inst is not None else None, str(u.get("org_id")), str(u.get("project_id")))


def _per_instance(seen: _Seen, charged: Mapping[tuple[str, str], int],
                  diagnosis: Diagnosis | None) -> list[InstanceCharge]:
    rows_per: dict[Ident, int] = defaultdict(int)
    for u in seen.usage.values():
        rows_per[_ident(u)] += 1
    money: dict[Key, int] = defaultdict(int)
    for (uid, currency), amount in charged.items():
        money[(*_ident(seen.usage[uid]), currency)] += amount
    net_impact: dict[Key, int] = defaultdict(int)
    for row in diagnosis.impact if diagnosis else []:
        net_impact[(row.app_instance_id, row.org_id, row.project_id, row.currency)] += (
            row.overcharged_minor - row.undercharged_minor)
    keys: set[Key] = set(money) | set(net_impact)
    for ident in rows_per:
        if not any(k[:3] == ident for k in keys):
            keys.add((*ident, ""))  # usage but no charge at all: currency unknown
    out = [
        InstanceCharge(app_instance_id=k[0], org_id=k[1], project_id=k[2], currency=k[3],
                       usage_rows=rows_per.get((k[0], k[1], k[2]), 0), charged_minor=money.get(k, 0),
                       expected_minor=money.get(k, 0) - net_impact.get(k, 0))
        for k in keys
    ]
    out.sort(key=lambda c: (c.currency, c.org_id, c.project_id, c.app_instance_id or ""))
    return out


def usage_vs_ledger(records: Sequence[EvidenceRecord], diagnosis: Diagnosis | None) -> UsageVsLedger:
    """Per app instance: usage rows seen, the customer-visible charge, the expected charge."""
    seen = _seen(records)
    instances = _per_instance(seen, _charged(seen), diagnosis)
    return UsageVsLedger(tuple(instances), seen.complete, tuple(dict.fromkeys(seen.notes)))
