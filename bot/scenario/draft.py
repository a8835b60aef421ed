"""The platform being built: planned instances, lifecycle calls and hourly rows, and the
draft that holds them while the steps of ``bot.scenario.generate`` fill it in. Every random
draw comes from ``Draft.rng``."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from bot.diagnosis.model import (
    BillingAccount,
    Component,
    LedgerEntry,
    LogEvent,
    RateCard,
    Span,
    UsageRecord,
)
from bot.scenario.platform import CorrectCase
from bot.scenario.spec import GRACE, HOUR, Injection, InstanceSpec, Plant, ScenarioError, ScenarioSpec

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def floor_hour(t: datetime) -> datetime:
    return t.replace(minute=0, second=0, microsecond=0)


def seconds(td: timedelta) -> Decimal:
    us = (td.days * 86400 + td.seconds) * 1_000_000 + td.microseconds
    return (Decimal(us) / Decimal(1_000_000)).quantize(Decimal("0.000001"))


def rfc3339(t: datetime) -> str:
    return t.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


@dataclass(slots=True, eq=False)
class Inst:
    app_instance_id: str
    org_id: str
    org_name: str
    project_id: str
    currency: str
    spec: InstanceSpec
    allocation_id: str | None
    app_kind: str
    components: list[Component]
    start_delay: timedelta
    started_at: datetime = EPOCH
    stopped_at: datetime | None = None
    call: Call | None = None
    injections: int = 0

    @property
    def mode(self) -> str:
        return self.spec.operating_mode

    def correct_source(self, c: Component) -> str:
        return "app_runtime" if self.mode == "managed" or c.control_plane else "allocation"


@dataclass(slots=True, eq=False)
class Call:
    label: str | None
    org_id: str
    org_name: str
    project_id: str
    members: list[Inst]
    funded: bool
    requested_at: datetime = EPOCH
    correlation_id: str = ""
    trace_id: str = ""
    root_span_id: str = ""


@dataclass(slots=True, eq=False)
class Row:
    """One planned hourly row (or the hole where one should be)."""

    inst: Inst
    comp: Component
    period_start: datetime
    quantity: Decimal
    usage_source: str
    allocation_id: str | None
    project_id: str
    runtime_backend: str
    operating_mode: str
    control_plane_scope: str
    control_plane: bool
    emitted_at: datetime
    fate: str = "recorded"  # recorded | missing_emitter | missing_rejected
    debit: str = "ok"  # ok | none | wrong
    wrong_delta: int = 0
    orphan: bool = False
    dup_of: Row | None = None
    reversed: bool = False
    credits: list[str] = field(default_factory=list)
    tag: int | None = None
    reserved: bool = False
    has_dup: bool = False
    # filled while emitting
    source_event_id: str = ""
    usage_record_id: str = ""
    debit_id: str = ""
    orphan_id: str = ""
    ghost_usage_id: str = ""
    credit_ids: list[str] = field(default_factory=list)
    amount: int = 0

    @property
    def full_hour(self) -> bool:
        return self.quantity == Decimal(3600)


class Draft:
    """Everything a platform is made of, while it is being made."""

    def __init__(self, spec: ScenarioSpec, now: datetime, seed: int) -> None:
        if now.tzinfo is None:
            raise ScenarioError("now must be timezone-aware")
        self.spec = spec
        self.now = now.astimezone(UTC)
        self.seed = seed
        self.rng = random.Random(seed)  # noqa: S311 - deterministic data, not secrets
        self.insts: list[Inst] = []
        self.by_id: dict[str, Inst] = {}
        self.calls: list[Call] = []
        self.accounts: list[BillingAccount] = []
        self.cards: list[RateCard] = []
        self.rows: list[Row] = []
        self.pending: dict[str, list[datetime]] = {}
        self.correct: list[CorrectCase] = []
        self.plant_rows: list[tuple[Plant, list[Row], tuple[str, ...]]] = []
        self.inj_rows: list[tuple[Injection, str, list[Row]]] = []
        self.logs: list[LogEvent] = []
        self.spans: list[Span] = []
        self.usage: list[UsageRecord] = []
        self.ledger: list[LedgerEntry] = []
        self.ur_n = 0
        self.le_n = 0
        self.src_seen: set[str] = set()
        self.stop_calls: list[Call] = []

    # ---------------------------------------------------------------- ids

    def hex(self, bits: int) -> str:
        while True:
            v = self.rng.getrandbits(bits)
            if v:
                return f"{v:0{bits // 4}x}"

    def span_id(self) -> str:
        return self.hex(64)

    def next_ur(self) -> str:
        self.ur_n += 1
        return f"ur-{self.ur_n:07d}"

    def next_le(self) -> str:
        self.le_n += 1
        return f"le-{self.le_n:07d}"

    def next_src(self) -> str:
        while True:
            s = f"src-{self.hex(64)}"
            if s not in self.src_seen:
                self.src_seen.add(s)
                return s

    def jitter(self, lo: float, hi: float) -> timedelta:
        return timedelta(microseconds=int(self.rng.uniform(lo, hi) * 1_000_000))

    def hours_of(self, inst: Inst) -> list[tuple[datetime, Decimal, bool]]:
        """(period_start, quantity, row due) for every hour the instance ran."""
        end = inst.stopped_at or self.now
        out: list[tuple[datetime, Decimal, bool]] = []
        h = floor_hour(inst.started_at)
        while h < end:
            q = seconds(min(h + HOUR, end) - max(h, inst.started_at))
            if q > 0:
                out.append((h, q, h + HOUR + GRACE <= self.now))
            h += HOUR
        return out

    def due_hours(self, inst: Inst) -> list[datetime]:
        return [h for h, _, due in self.hours_of(inst) if due]
