"""The indexes every check shares (instances, components, currencies, prices, debits and
reversals, the pivot logs) and the groups findings are collected in."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from bot.diagnosis.checks.evidence import BillingEvidence, MeteringLogs
from bot.diagnosis.model import (
    CHECKS,
    AppInstance,
    CheckName,
    Component,
    Finding,
    LedgerEntry,
    OwningLayer,
    UsageRecord,
)
from bot.diagnosis.money import Pricer

HOUR = timedelta(hours=1)


@dataclass(slots=True)
class Group:
    """Findings of one check on one instance for one cause, merged into one Finding."""

    check: CheckName
    instance: AppInstance | None
    org_id: str | None
    project_id: str | None
    layer: OwningLayer
    what: str
    usage_ids: list[str] = field(default_factory=list)
    ledger_ids: list[str] = field(default_factory=list)
    periods: list[datetime] = field(default_factory=list)
    impact: int = 0
    currency: str | None = None
    unpriced: int = 0
    evidence: list[str] = field(default_factory=list)

    def add_row(self, u: UsageRecord, before: int | None, after: int | None) -> None:
        """A row whose charge moves from ``before`` to ``after`` once corrected."""
        self.usage_ids.append(u.usage_record_id)
        self.periods.append(u.period_start)
        if before is None or after is None:
            self.unpriced += 1
        else:
            self.impact += before - after

    def add_ledger(self, u: UsageRecord, entries: list[LedgerEntry], impact: int | None) -> None:
        """A row and the ledger entries that are wrong for it."""
        self.usage_ids.append(u.usage_record_id)
        self.periods.append(u.period_start)
        self.ledger_ids.extend(e.ledger_entry_id for e in entries)
        if impact is None:
            self.unpriced += 1
        else:
            self.impact += impact


class Context:
    """The evidence, indexed once for every check."""

    def __init__(self, ev: BillingEvidence) -> None:
        self.ev = ev
        self.instances = {i.app_instance_id: i for i in ev.instances}
        self.components: dict[str, dict[str, Component]] = defaultdict(dict)
        for c in ev.components:
            self.components[c.app_instance_id][c.component] = c
        self.currency = {a.org_id: a.currency for a in ev.accounts}
        self.pricer = Pricer(ev.rate_cards)
        self.logs = ev.metering if ev.metering is not None else MeteringLogs(ev.logs)
        self.groups: dict[tuple[str, str | None, str], Group] = {}
        self.usage_ids = {u.usage_record_id for u in ev.usage}
        self._recorded_cache: dict[tuple[object, ...], int | None] = {}
        # ledger indexes
        self.debits: dict[str, list[LedgerEntry]] = {}
        self.reversed_ids: set[str] = set()
        for e in ev.ledger:
            if e.direction == "debit":
                if e.kind == "usage" and e.usage_record_id:
                    got = self.debits.get(e.usage_record_id)
                    if got is None:
                        self.debits[e.usage_record_id] = [e]
                    else:
                        got.append(e)
            elif e.kind == "reversal" and e.reverses_entry_id:
                self.reversed_ids.add(e.reverses_entry_id)

    def group(self, check: CheckName, inst: AppInstance | None, layer: OwningLayer, what: str,
              org_id: str | None = None, project_id: str | None = None) -> Group:
        aid = inst.app_instance_id if inst else None
        key = (check, aid, what)
        g = self.groups.get(key)
        if g is None:
            g = Group(check, inst, inst.org_id if inst else org_id, inst.project_id if inst else project_id,
                      layer, what)
            g.currency = self.currency.get(g.org_id or "")
            self.groups[key] = g
        return g

    def effective_debits(self, usage_record_id: str) -> list[LedgerEntry]:
        """The row's usage debits that no reversal cancels."""
        return [d for d in self.debits.get(usage_record_id, ()) if d.ledger_entry_id not in self.reversed_ids]

    def visible_charge(self, usage_record_id: str) -> int:
        return sum(d.amount_minor for d in self.effective_debits(usage_record_id))

    def price_recorded(self, u: UsageRecord) -> int | None:
        key = (u.org_id, u.resource_class, u.usage_source, u.control_plane_component, u.control_plane_scope,
               u.period_start, u.quantity)
        try:
            return self._recorded_cache[key]
        except KeyError:
            pass
        cur = self.currency.get(u.org_id)
        v = None if cur is None else self.pricer.price(cur, u.resource_class, u.usage_source,
                                                       u.control_plane_component, u.control_plane_scope,
                                                       u.period_start, u.quantity)
        self._recorded_cache[key] = v
        return v

    def owner(self, u: UsageRecord) -> AppInstance | None:
        """The instance a row belongs to: by its anchor, else by its ``metering.emitted`` line."""
        if u.app_instance_id and u.app_instance_id in self.instances:
            return self.instances[u.app_instance_id]
        aid = self.logs.instance_of_event.get(u.source_event_id)
        return self.instances.get(aid) if aid else None

    def price(self, cur: str | None, u: UsageRecord, source: str, cp: bool, scope: str | None) -> int | None:
        """The row's price under the given source, control-plane flag and scope (rule 5)."""
        if cur is None:
            return None
        return self.pricer.price(cur, u.resource_class, source, cp, scope, u.period_start, u.quantity)

    def findings(self) -> list[Finding]:
        out: list[Finding] = []
        for g in self.groups.values():
            out.append(Finding(
                check=g.check,
                app_instance_id=g.instance.app_instance_id if g.instance else None,
                org_id=g.org_id,
                project_id=g.project_id,
                owning_layer=g.layer,
                usage_record_ids=sorted(set(g.usage_ids)),
                ledger_entry_ids=sorted(set(g.ledger_ids)),
                summary=self._summary(g),
                impact_minor=g.impact,
                currency=g.currency,
                period_starts=sorted(set(g.periods)),
                evidence=g.evidence[:20],
            ))
        return sort_findings(out)

    @staticmethod
    def _summary(g: Group) -> str:
        n_rows = len(set(g.usage_ids))
        when = periods_text(g.periods)
        subject = g.instance.app_instance_id if g.instance else f"{g.org_id}/{g.project_id}"
        if g.check == "missing_usage":
            head = f"{subject}: no usage row for {when}; {g.what}"
        elif g.check == "ledger_mismatch" and not g.usage_ids:
            head = f"{subject}: {len(set(g.ledger_ids))} {g.what}"
        else:
            rows = f"{n_rows} usage row{'s' if n_rows != 1 else ''}"
            head = f"{subject}: {rows} ({when}): {g.what}"
        if g.unpriced:
            head += f"; {g.unpriced} could not be priced (no matching rate card or account)"
        return head


def sort_findings(findings: Iterable[Finding]) -> list[Finding]:
    """The stable order of findings: check, org, project, instance, first hour, summary."""
    order = {c: i for i, c in enumerate(CHECKS)}
    far = datetime.max.replace(tzinfo=UTC)
    return sorted(findings, key=lambda f: (
        order[f.check], f.org_id or "", f.project_id or "", f.app_instance_id or "",
        f.period_starts[0] if f.period_starts else far, f.summary,
    ))


def _fmt_t(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def periods_text(periods: list[datetime]) -> str:
    ps = sorted(set(periods))
    if not ps:
        return ""
    if len(ps) == 1:
        return _fmt_t(ps[0])
    return f"{len(ps)} hours, {_fmt_t(ps[0])} to {_fmt_t(ps[-1] + HOUR)}"
