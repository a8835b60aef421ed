"""The corrections the approved procedure would post for findings that need a data
correction: reversals of wrong or extra debits, and debits at the rule 5 price. Proposed
only; nothing here writes anywhere."""

from __future__ import annotations

from collections.abc import Iterable

from bot.diagnosis.checks.attribution import ATTRIBUTION_CHECKS
from bot.diagnosis.checks.context import Context
from bot.diagnosis.checks.evidence import BillingEvidence
from bot.diagnosis.model import AppInstance, CheckName, Correction, Finding, LedgerEntry, UsageRecord


def propose_corrections(ev: BillingEvidence, findings: Iterable[Finding]) -> list[Correction]:
    """The ledger entries the approved correction procedure would post for the findings
    that need a data correction, each linked to its correlation id. Proposed only:
    reversals of wrong or extra debits, and debits at the rule 5 price (for a
    re-attributed row, at the price under the correct attribution). Missing usage needs
    its metering event re-driven, not a ledger entry, and gets none here.

    Every new debit goes to the instance's own org and project (a row recorded against
    the wrong project is charged in the right one). A row with an attribution finding is
    corrected under the correct attribution first; its other findings then find it done."""
    p = _Proposal(ev)
    ordered = sorted(findings, key=lambda f: f.check not in ATTRIBUTION_CHECKS)  # stable: attribution first
    for f in ordered:
        if f.check == "duplicate_charge":
            for lid in f.ledger_entry_ids:
                if lid in p.entries:
                    p.reverse(p.entries[lid], "extra charge for an hour already charged (duplicate usage row)",
                              f.check)
        elif f.check == "ledger_mismatch" and not f.usage_record_ids:
            for lid in f.ledger_entry_ids:
                if lid in p.entries:
                    p.reverse(p.entries[lid], "usage debit whose usage row does not exist", f.check)
        elif f.check == "ledger_mismatch":
            for uid in f.usage_record_ids:
                p.reprice(uid, f.check)
        elif f.check in ATTRIBUTION_CHECKS:
            for uid in f.usage_record_ids:
                p.reattribute(uid, f.check)
    return p.out


class _Proposal:
    """The corrections so far; each debit is reversed and each row corrected at most once."""

    def __init__(self, ev: BillingEvidence) -> None:
        self.c = Context(ev)
        self.usage = {u.usage_record_id: u for u in ev.usage}
        self.entries = {e.ledger_entry_id: e for e in ev.ledger}
        self.out: list[Correction] = []
        self.done_rows: set[str] = set()
        self.reversed: set[str] = set()

    def reverse(self, e: LedgerEntry, reason: str, check: CheckName) -> None:
        if e.ledger_entry_id in self.reversed:
            return
        self.reversed.add(e.ledger_entry_id)
        self.out.append(Correction(action="reverse_debit", org_id=e.org_id, project_id=e.project_id,
                                   usage_record_id=e.usage_record_id, reverses_entry_id=e.ledger_entry_id,
                                   amount_minor=e.amount_minor, currency=e.currency,
                                   correlation_id=e.correlation_id, reason=reason, check=check))

    def debit(self, u: UsageRecord, inst: AppInstance | None, amount: int, reason: str, check: CheckName) -> None:
        """A usage debit for ``u``, anchored to its instance's org and project (rule 2),
        not to wherever the row was recorded."""
        org, project = (inst.org_id, inst.project_id) if inst is not None else (u.org_id, u.project_id)
        self.out.append(Correction(action="post_debit", org_id=org, project_id=project,
                                   usage_record_id=u.usage_record_id, amount_minor=amount,
                                   currency=self.c.currency.get(org, "unknown"),
                                   correlation_id=u.correlation_id, reason=reason, check=check))

    def reprice(self, uid: str, check: CheckName) -> None:
        """Keep one debit at the rule 5 price of the row as recorded; reverse the others."""
        u = self.usage.get(uid)
        expected = self.c.price_recorded(u) if u is not None else None
        if u is None or expected is None or uid in self.done_rows:
            return
        self.done_rows.add(uid)
        effective = self.c.effective_debits(uid)
        keep = next((d for d in effective if d.amount_minor == expected), None)
        for d in effective:
            if d is not keep:
                self.reverse(d, "debit that differs from the rate card price, or one too many", check)
        if keep is None:
            self.debit(u, self.c.owner(u), expected, "the rate card price of the usage row (rule 5)", check)

    def reattribute(self, uid: str, check: CheckName) -> None:
        """Reverse the row's debits and debit it at the price under the correct attribution."""
        c = self.c
        u = self.usage.get(uid)
        inst = c.owner(u) if u is not None else None
        if u is None or inst is None or uid in self.done_rows:
            return
        self.done_rows.add(uid)
        comp = c.components.get(inst.app_instance_id, {}).get(u.component or "")
        cp = comp.control_plane if comp else u.control_plane_component
        source = "app_runtime" if inst.operating_mode == "managed" or cp else "allocation"
        correct = c.price(c.currency.get(inst.org_id), u, source, cp, inst.control_plane_scope)
        if correct is None:
            return
        for d in c.effective_debits(uid):
            self.reverse(d, f"charged under the wrong attribution ({check})", check)
        self.debit(u, inst, correct, f"re-attribute the row to {source}, control plane {cp}, scope "
                               f"{inst.control_plane_scope}; charge at that price", check)
