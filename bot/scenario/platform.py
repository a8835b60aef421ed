"""What a scenario gives: the platform's billing tables, logs and spans, and the answer key
(``expected`` drift, ``correct_cases`` that must stay silent). See docs/scenario.md."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from bot.diagnosis.model import (
    AppInstance,
    BillingAccount,
    CheckName,
    Component,
    LedgerEntry,
    LogEvent,
    OwningLayer,
    RateCard,
    Span,
    UsageRecord,
    Window,
)
from bot.scenario.spec import CorrectCaseKind


@dataclass(frozen=True, slots=True)
class Expected:
    """What a check must report for one injection."""

    check: CheckName
    app_instance_id: str
    usage_record_ids: frozenset[str]
    ledger_entry_ids: frozenset[str]
    owning_layer: OwningLayer
    correlation_id: str
    impact_minor: int
    currency: str
    note: str
    flavour: str = ""
    org_id: str = ""
    project_id: str = ""
    component: str | None = None
    period_starts: tuple[datetime, ...] = ()


@dataclass(frozen=True, slots=True)
class CorrectCase:
    """Correct data that looks suspicious; no check may report it."""

    kind: CorrectCaseKind
    app_instance_id: str | None
    note: str
    usage_record_ids: frozenset[str] = frozenset()
    ledger_entry_ids: frozenset[str] = frozenset()
    rate_card_ids: tuple[str, ...] = ()
    period_starts: tuple[datetime, ...] = ()


@dataclass(frozen=True, slots=True)
class LifecycleCall:
    """One API lifecycle call: one correlation id, one trace."""

    correlation_id: str
    trace_id: str
    root_span_id: str
    action: str  # start | stop
    org_id: str
    project_id: str
    app_instance_ids: tuple[str, ...]
    requested_at: datetime
    funded: bool
    label: str | None = None


@dataclass(slots=True)
class Platform:
    now: datetime
    seed: int
    accounts: list[BillingAccount]
    rate_cards: list[RateCard]
    instances: list[AppInstance]
    components: list[Component]
    usage: list[UsageRecord]
    ledger: list[LedgerEntry]
    logs: list[LogEvent]
    spans: list[Span]
    calls: list[LifecycleCall]
    expected: list[Expected]
    correct_cases: list[CorrectCase]
    disputed_correlation_id: str | None = None
    created_at: dict[str, datetime] = field(default_factory=dict)

    def window(self, days: int = 7) -> Window:
        return Window(self.now - timedelta(days=days), self.now)

    def instance(self, app_instance_id: str) -> AppInstance:
        for i in self.instances:
            if i.app_instance_id == app_instance_id:
                return i
        raise KeyError(app_instance_id)

    def call(self, correlation_id: str) -> LifecycleCall:
        for c in self.calls:
            if c.correlation_id == correlation_id:
                return c
        raise KeyError(correlation_id)

    def subject_instances(self, correlation_id: str) -> list[str]:
        """Every app instance that evidence carrying the correlation id names (platform.md,
        "What a diagnosis examines"): log lines, usage rows, ledger entries, spans."""
        ids: set[str] = set()
        row_instance = {u.usage_record_id: u.app_instance_id for u in self.usage}
        for e in self.logs:
            if e.correlation_id == correlation_id and e.app_instance_id:
                ids.add(e.app_instance_id)
        for u in self.usage:
            if u.correlation_id == correlation_id and u.app_instance_id:
                ids.add(u.app_instance_id)
        for le in self.ledger:
            if le.correlation_id == correlation_id and le.usage_record_id:
                aid = row_instance.get(le.usage_record_id)
                if aid:
                    ids.add(aid)
        for s in self.spans:
            if s.attributes.get("correlation_id") == correlation_id:
                aid = s.attributes.get("app_instance_id")
                if isinstance(aid, str):
                    ids.add(aid)
        return sorted(ids)

    def expected_for(
        self,
        check: CheckName | None = None,
        *,
        app_instance_ids: Iterable[str] | None = None,
    ) -> list[Expected]:
        wanted = None if app_instance_ids is None else set(app_instance_ids)
        return [
            e
            for e in self.expected
            if (check is None or e.check == check)
            and (wanted is None or e.app_instance_id in wanted)
        ]

    def trace_ids(self) -> list[str]:
        return sorted({s.trace_id for s in self.spans})
