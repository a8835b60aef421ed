"""The small Protocols a diagnosis flow depends on.

A flow never knows whether logs came from Loki or from a file: it asks a
``LogSource``, a ``TraceSource`` and a ``BillingReader``. Every answer is a
``Fetched``: the items plus a ``SourceCall`` that says exactly what was asked
(LogQL text, Tempo URL, SQL query name and parameters), over which window, when, and
how long it took; the flow records that as evidence. Failures raise
``bot.errors.SourceUnavailable`` or ``bot.errors.SourceError``, never anything else.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, Protocol, TypeVar

from bot.diagnosis.model import (
    AppInstance,
    BillingAccount,
    Component,
    HourRun,
    Hours,
    LedgerEntry,
    LogEvent,
    RateCard,
    Span,
    UsageRecord,
    Window,
)
from bot.sources.logql import LogQuery

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class SourceCall:
    """What one source call asked, for the evidence record."""

    source: str  # "loki" | "tempo" | "billing"
    kind: str  # "logql" | "trace" | "sql"
    request: str  # LogQL text, trace URL or file, SQL query name
    params: Mapping[str, Any] = field(default_factory=dict)
    window: Window | None = None
    started_at: datetime | None = None
    duration_ms: float = 0.0
    via: str = ""  # where it went: "http://loki:3100", "offline:/path", "postgres"


def floor_hour(t: datetime) -> datetime:
    """The top of t's hour, in UTC: where the billing reader's usage windows start."""
    return t.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


@dataclass(slots=True)
class Fetched(Generic[T]):
    items: list[T]
    call: SourceCall


@dataclass(frozen=True, slots=True)
class Coverage:
    """Which hours of one instance's component have at least one usage row in the window:
    exactly ``hours`` when they are listed; else ``rows`` rows, one per hour from
    ``first_hour`` to ``last_hour`` (the usual case, two timestamps instead of one per
    hour) unless two of them share an hour, which the screening tells (rule 7) and
    ``usage_hours`` then lists."""

    app_instance_id: str
    component: str
    rows: int
    first_hour: datetime
    last_hour: datetime
    hours: tuple[datetime, ...] | None = None

    def covered(self) -> Hours:
        return HourRun(self.first_hour, self.last_hour) if self.hours is None else frozenset(self.hours)


@dataclass(frozen=True, slots=True)
class KnownCredits:
    """Every credit that reverses an entry, of these (org_id, project_id), posted at or
    after ``since``: what the screening read (``screen_usage``), handed to
    ``ledger_for_usage`` so that it does not walk those projects again."""

    org_projects: frozenset[tuple[str, str]]
    since: datetime
    credits: tuple[LedgerEntry, ...]


@dataclass(frozen=True, slots=True)
class Screened:
    """``screen_usage``'s answer by kind: the suspect rows, the coverage, the credits as
    ``ledger_for_usage`` takes them, and the usage debits without a usage row
    (``orphan_debits`` of ``credits.org_projects``)."""

    usage: list[UsageRecord]
    coverage: list[Coverage]
    credits: KnownCredits
    orphans: list[LedgerEntry]


def split_screened(items: Iterable[UsageRecord | LedgerEntry | Coverage],
                   org_projects: Iterable[tuple[str, str]], window: Window) -> Screened:
    """``screen_usage``'s items by kind; ``org_projects``: the screened instances' (their
    credits were read from the window's start, floored to the UTC hour, on)."""
    usage: list[UsageRecord] = []
    coverage: list[Coverage] = []
    credits: list[LedgerEntry] = []
    orphans: list[LedgerEntry] = []
    for x in items:
        if isinstance(x, UsageRecord):
            usage.append(x)
        elif isinstance(x, Coverage):
            coverage.append(x)
        elif x.direction == "credit":
            credits.append(x)
        else:
            orphans.append(x)
    return Screened(usage, coverage, KnownCredits(frozenset(org_projects), floor_hour(window.start), tuple(credits)),
                    orphans)


def covered_hours(*coverage: Iterable[Coverage]) -> dict[tuple[str, str], Hours]:
    """``BillingEvidence.covered`` from coverage answers: a later answer for the same
    component (``usage_hours``'s exact one) replaces an earlier one."""
    return {(c.app_instance_id, c.component): c.covered() for cov in coverage for c in cov}


def hidden_gaps(coverage: Iterable[Coverage], suspects: Iterable[UsageRecord]) -> list[tuple[str, str]]:
    """The (app_instance_id, component) whose coverage is a run of hours while two of its
    screened rows share an hour: as many rows as hours then means as many hours missing,
    somewhere in the run. ``usage_hours`` lists their hours."""
    slots = Counter((u.app_instance_id, u.component, u.period_start) for u in suspects)
    shared = {(i, c) for (i, c, _), n in slots.items() if n > 1 and i is not None and c is not None}
    return sorted((c.app_instance_id, c.component) for c in coverage
                  if c.hours is None and (c.app_instance_id, c.component) in shared)


class LogSource(Protocol):
    @property
    def label(self) -> str:
        """Where logs come from, for people: "loki http://…" or "offline folder …"."""
        ...

    async def query(self, q: LogQuery, window: Window) -> Fetched[LogEvent]:
        """All log events the query matches in the window, oldest first."""
        ...


class TraceSource(Protocol):
    @property
    def label(self) -> str: ...

    async def get_trace(self, trace_id: str, window: Window) -> Fetched[Span]:
        """The trace's spans; no items when the trace does not exist (404 or empty)."""
        ...


class BillingReader(Protocol):
    """Read-only access to the billing schema; each method is one named SQL query."""

    @property
    def label(self) -> str: ...

    async def usage_by_correlation(self, correlation_id: str, window: Window) -> Fetched[UsageRecord]: ...

    async def ledger_by_correlation(self, correlation_id: str, window: Window) -> Fetched[LedgerEntry]: ...

    async def app_instances(self, app_instance_ids: Sequence[str]) -> Fetched[AppInstance]: ...

    async def instances_in_scope(
        self, org_id: str, project_id: str | None, window: Window
    ) -> Fetched[AppInstance]:
        """App instances of an org (and project) that ran at some time in the window."""
        ...

    async def components(self, app_instance_ids: Sequence[str]) -> Fetched[Component]: ...

    async def usage_for_instances(
        self, app_instance_ids: Sequence[str], window: Window
    ) -> Fetched[UsageRecord]:
        """Usage rows of these instances whose period_start lies in the window."""
        ...

    async def usage_by_ids(self, usage_record_ids: Sequence[str]) -> Fetched[UsageRecord]: ...

    async def ledger_for_usage(
        self, usage_record_ids: Sequence[str], known: KnownCredits | None = None
    ) -> Fetched[LedgerEntry]:
        """Entries naming these usage rows, plus every credit that reverses one of them
        (``known``: those credits already read, which the answer then includes without
        reading them again)."""
        ...

    async def orphan_debits(
        self, org_projects: Sequence[tuple[str, str]], window: Window, app_instance_ids: Sequence[str] = ()
    ) -> Fetched[LedgerEntry]:
        """Usage debits posted in the window whose usage row does not exist.
        ``app_instance_ids``: whose rows the debits most likely name (a hint for the work,
        not a filter: the answer is the same without it)."""
        ...

    async def orphan_debits_by_correlation(
        self, correlation_ids: Sequence[str], window: Window
    ) -> Fetched[LedgerEntry]:
        """Usage debits carrying one of these correlation ids whose usage row does not exist."""
        ...

    async def screen_usage(
        self, app_instance_ids: Sequence[str], window: Window
    ) -> Fetched[UsageRecord | LedgerEntry | Coverage]:
        """The database's first pass over many instances' rows in the window, four kinds
        of items: the rows that could break rules 1, 2, 3, 6 or 7 (a superset of what the
        checks report: rows it leaves out are certain to be correct under those rules);
        every credit that reverses an entry, of the instances' (org_id, project_id),
        posted from the window's start (floored to the hour) on (``KnownCredits``); the
        usage debits of those projects without a usage row (``orphan_debits``' answer);
        and per (instance, component) the hours that have a usage row (rule 4).
        ``split_screened`` tells them apart."""
        ...

    async def usage_hours(self, components: Sequence[tuple[str, str]], window: Window) -> Fetched[Coverage]:
        """The coverage of these (instance, component), every hour listed (``hidden_gaps``)."""
        ...

    async def billing_accounts(self, org_ids: Sequence[str]) -> Fetched[BillingAccount]: ...

    async def rate_cards(self, currencies: Sequence[str]) -> Fetched[RateCard]: ...

    async def scan_export_entries(
        self, org_id: str, project_id: str | None, months: Sequence[str],
        sink: Callable[[Sequence[Sequence[Any]]], None],
    ) -> SourceCall:
        """Every ledger entry of the org (and project) posted in these UTC months (``YYYY-MM``)
        as the usage export shows it (``bot.export.lines.expected_line``'s row), a batch at a
        time to ``sink``; never the whole set at once."""
        ...

    async def scan_export_lines(
        self, org_id: str, project_id: str | None, months: Sequence[str],
        sink: Callable[[Sequence[Sequence[Any]]], None],
    ) -> SourceCall:
        """The same entries, each as ``(ledger_entry_id, canonical text)`` (``bot.export.canon``),
        a batch at a time to ``sink``."""
        ...

    async def export_entries_by_id(self, org_id: str, ledger_entry_ids: Sequence[str]) -> Fetched[tuple[Any, ...]]:
        """The typed lines (as ``scan_export_entries`` gives them) of the named entries of the org."""
        ...
