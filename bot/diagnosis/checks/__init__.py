"""The runbook's six checks over billing evidence (platform.md, rules 1 to 7). Pure.

``run_checks`` takes the evidence of the app instances under examination and returns
findings; it reports only what is wrong. What is correct stays silent: an hour still
inside the 2-hour grace window, a duplicate whose extra debit was reversed, refunds
and promo credits, ``on_allocation`` workers billed as ``allocation``, a charge equal
to rule 5 to the minor unit, a rate card that changed inside the window.

How a usage row finds its app instance: by its ``app_instance_id`` when that names an
instance under examination, else by the ``metering.emitted`` log line of its
``source_event_id`` (a row anchored to the wrong instance is still found that way).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection

from bot.diagnosis.checks.attribution import ATTRIBUTION_CHECKS, check_attribution
from bot.diagnosis.checks.context import Context, sort_findings
from bot.diagnosis.checks.corrections import propose_corrections
from bot.diagnosis.checks.evidence import BillingEvidence
from bot.diagnosis.checks.reconciliation import (
    RECONCILIATION_CHECKS,
    check_completeness,
    check_duplicates,
    check_ledger,
    check_orphan_debits,
)
from bot.diagnosis.model import CHECKS, CheckName, Finding, UsageRecord
from bot.gcpause import gc_paused

__all__ = [
    "ATTRIBUTION_CHECKS",
    "RECONCILIATION_CHECKS",
    "BillingEvidence",
    "propose_corrections",
    "run_checks",
    "sort_findings",
]


def run_checks(ev: BillingEvidence, checks: Collection[CheckName] = CHECKS) -> list[Finding]:
    """The findings of the given checks (all six by default), in ``sort_findings`` order.

    The attribution checks need no ledger entries; the flow runs them as soon as the
    usage rows are read, and the reconciliation checks once the ledger is.
    """
    with gc_paused():
        return _run(Context(ev), checks)


def _run(ctx: Context, checks: Collection[CheckName]) -> list[Finding]:
    """Per instance (in id order): attribution, duplicates, ledger, completeness; then the
    debits of rows that do not exist."""
    want = set(checks)
    rows_by_inst: dict[str, list[UsageRecord]] = defaultdict(list)
    for u in ctx.ev.usage:
        inst = ctx.owner(u)
        if inst is not None:
            rows_by_inst[inst.app_instance_id].append(u)
    for aid in sorted(ctx.instances):
        inst = ctx.instances[aid]
        rows = rows_by_inst.get(aid, [])
        if want & set(ATTRIBUTION_CHECKS):
            check_attribution(ctx, inst, rows)
        if want & {"duplicate_charge", "ledger_mismatch"}:
            covered_by_dupes = check_duplicates(ctx, inst, rows)
            if "ledger_mismatch" in want:
                check_ledger(ctx, inst, rows, covered_by_dupes)
        if "missing_usage" in want:
            check_completeness(ctx, inst, rows)
    if "ledger_mismatch" in want:
        check_orphan_debits(ctx)
    return [f for f in ctx.findings() if f.check in want]
