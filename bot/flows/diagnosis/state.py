"""What the steps found, passed from step to step: one part per step, each filled by
that step's ``fetch`` and read by the steps after it. A new step adds its part here."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from bot.diagnosis.checks.evidence import MeteringLogs
from bot.diagnosis.core import Named
from bot.diagnosis.model import (
    AppInstance,
    BillingAccount,
    Component,
    Correction,
    ExportState,
    Finding,
    FollowUp,
    Hours,
    LedgerEntry,
    LogEvent,
    RateCard,
    Span,
    UsageRecord,
)
from bot.export.run import ExportOutcome
from bot.sources.protocols import KnownCredits


@dataclass(slots=True)
class CorrelatedLogs:
    """Step ``logs``: every service's lines for the correlation id."""

    events: list[LogEvent] = field(default_factory=list)
    query: str = ""  # the LogQL asked; empty when not asked
    read: bool = False  # Loki answered
    named: Named = field(default_factory=Named)  # what the events name, scanned once


@dataclass(slots=True)
class CorrelatedRows:
    """Step ``billing_rows``: usage rows and ledger entries that carry the correlation id
    (and the usage rows those entries name)."""

    usage: list[UsageRecord] = field(default_factory=list)
    ledger: list[LedgerEntry] = field(default_factory=list)
    named: Named = field(default_factory=Named)  # what the rows and entries name, scanned once


@dataclass(slots=True)
class TraceRead:
    """Traces asked of Tempo: per trace id its spans, None when the call failed."""

    asked: list[tuple[str, list[Span] | None]] = field(default_factory=list)

    @property
    def spans(self) -> list[Span]:
        return [s for _, got in self.asked for s in got or []]

    @property
    def all_failed(self) -> bool:
        return bool(self.asked) and all(got is None for _, got in self.asked)


@dataclass(slots=True)
class Traces:
    """Step ``trace``: the spans of the traces the evidence names."""

    read: TraceRead | None = None  # None: not asked
    spans: list[Span] | None = field(default_factory=list)  # None: Tempo could not be read


@dataclass(slots=True)
class Pivot:
    """Step ``pivot``: every app instance the evidence names, their metadata and logs."""

    instance_ids: list[str] = field(default_factory=list)
    instances: list[AppInstance] = field(default_factory=list)
    components: list[Component] = field(default_factory=list)
    logs: list[LogEvent] = field(default_factory=list)
    logs_asked: bool = False  # Loki was asked by app_instance_id


@dataclass(slots=True)
class Attribution:
    """Step ``attribution``: the instances' usage rows, accounts and prices; rules 1 to 3."""

    usage: list[UsageRecord] = field(default_factory=list)
    accounts: list[BillingAccount] = field(default_factory=list)
    rate_cards: list[RateCard] = field(default_factory=list)
    # screened at scale: which (instance, component) hours have a row at all (None: every row read)
    covered: dict[tuple[str, str], Hours] | None = None
    # screened: the credits the screening read, which the reconciliation's ledger read
    # reuses, and the usage debits without a usage row of the same projects (None: the
    # screening did not answer)
    credits: KnownCredits | None = None
    orphans: list[LedgerEntry] = field(default_factory=list)
    rows_examined: int = 0
    findings: list[Finding] = field(default_factory=list)
    # set when the rows are read (or could not be): the reconciliation's reading waits for it
    read: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass(slots=True)
class ExportPart:
    """Step ``export``: the usage export against the ledger (rule 8), when one was given."""

    outcome: ExportOutcome | None = None
    state: ExportState = "not_given"
    why: str = ""  # when it could not be read
    findings: list[Finding] = field(default_factory=list)


@dataclass(slots=True)
class Reconciliation:
    """Step ``reconciliation``: the ledger against the rows; every check's findings."""

    read: bool = False  # the ledger was asked (there were rows or entries to reconcile)
    ledger: list[LedgerEntry] = field(default_factory=list)
    orphans: int = 0  # debits without a usage row
    # an org's logs, read by app_instance_id for the instances with missing hours only
    scope_logs: list[LogEvent] = field(default_factory=list)
    logs_for: frozenset[str] | None = None  # whose were read (None: not asked)
    logs_wanted: int = 0  # instances with missing hours
    findings: list[Finding] = field(default_factory=list)
    corrections: list[Correction] = field(default_factory=list)
    follow_ups: list[FollowUp] = field(default_factory=list)


@dataclass(slots=True)
class RunState:
    logs_available: bool  # every Loki read so far answered
    logs: CorrelatedLogs = field(default_factory=CorrelatedLogs)
    rows: CorrelatedRows = field(default_factory=CorrelatedRows)
    trace: Traces = field(default_factory=Traces)
    pivot: Pivot = field(default_factory=Pivot)
    attribution: Attribution = field(default_factory=Attribution)
    reconciliation: Reconciliation = field(default_factory=Reconciliation)
    export: ExportPart = field(default_factory=ExportPart)
    # all_logs indexed for the checks, and the lengths it was built at (the lists only grow)
    _metering: tuple[tuple[int, int, int], MeteringLogs] | None = None

    @property
    def all_logs(self) -> list[LogEvent]:
        return [*self.logs.events, *self.pivot.logs, *self.reconciliation.scope_logs]

    def metering_logs(self) -> MeteringLogs:
        """``all_logs`` indexed once for the three sets of checks that read them (the
        attribution's, the reconciliation's, the corrections'), again only if more came."""
        key = (len(self.logs.events), len(self.pivot.logs), len(self.reconciliation.scope_logs))
        if self._metering is None or self._metering[0] != key:
            self._metering = (key, MeteringLogs(self.all_logs))
        return self._metering[1]
