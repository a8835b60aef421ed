"""Deterministic platforms with known, injected billing drift.

``build_platform(spec, now=..., seed=...)`` turns a ``ScenarioSpec`` into a ``Platform``:
the billing tables (accounts, rate cards, app instances and their components, usage
rows, ledger entries), the services' log lines and the traces, exactly as platform.md
describes them, plus the answer key: ``platform.expected`` (one ``Expected`` per
injected drift, with the ids a check must report) and ``platform.correct_cases``
(tricky data that is *correct* and must produce no finding). The same ``seed`` and
``now`` always give the same platform, down to every id and timestamp.

The spec
========
``ScenarioSpec.orgs`` lays the platform out: orgs (``org-<name>``, one billing
currency each: USD, EUR or JPY, whose minor-unit exponent is 0), their projects
(``prj-<org>-<name>``) and app instances (``InstanceSpec``): runtime backend
(kubernetes, ray, slurm), operating mode (managed, on_allocation: such an instance has
an ``allocation_id``), control-plane scope, the worker's resource class, when it started
(hours before ``now``) and for how long it ran (or that it still runs). Anything left
``None`` is drawn from the seed. Instances with the same ``call`` label in one project
are started by ONE lifecycle call: one correlation id and one trace covering several
instances (a project-wide start). ``ScenarioSpec.grid(...)`` builds a layout from
counts; ``demo_spec()`` is the demo platform.

Components per backend: ray ``ray-head`` (control plane) + ``ray-worker``; slurm
``slurmctld`` (control plane) + ``slurmd``; kubernetes ``operator`` (control plane) +
``worker``. Control-plane components consume ``cpu.standard``, workers the instance's
``worker_class`` (``gpu.h100``, ``gpu.a100`` or ``cpu.standard``).

Correct data
============
Rules 1 to 7 hold everywhere nothing is injected: one row per component per hour run
(``period_start`` on the hour, ``quantity`` = seconds run within it, partial first and
last hours), rows only for hours whose end lies at least 2 hours before ``now`` (later
hours are pending: rule 4's grace window), source per rule 1, anchors and
``control_plane_component`` equal to the instance's and component's, and one ``usage``
debit per row at ``round_half_even(quantity * unit_price_micros * 10**exp / 10**6)``
under the one matching rate card. Rate cards form a full price book per currency:
``allocation`` is cheaper than ``app_runtime`` and control-plane cards (scope-specific)
differ from worker cards (scope null), so attribution errors always cost something.
Rows and debits carry the starting call's ``correlation_id`` and ``trace_id``. Each
row has the log trail ``metering.emitted`` -> ``outbox.published`` (runtime worker) ->
``billing.usage_recorded`` -> ``billing.ledger_posted`` (billing worker) and the spans
``outbox.publish`` -> ``billing.handle_usage`` -> ``billing.post_ledger`` in the call's
trace under its root ``POST /v1/app-instances/{id}/start``. Calls that involve
customer funding also have a ``payment.webhook`` span and a ``payment.webhook_delivered``
line. Stopped instances have their own stop call (``.../stop``, ``app.lifecycle.stopped``).

Injections (``Injection(check, flavour, instance, hours)``)
===========================================================
Each affects ``hours`` consecutive full (3600 s) hourly rows of one component, all
older than the grace window, and records one ``Expected`` (``check``,
``app_instance_id``, ``usage_record_ids``, ``ledger_entry_ids``, ``owning_layer``,
``correlation_id`` of the instance's start call, ``impact_minor``, ``currency``,
``note``, plus ``flavour``, ``org_id``, ``project_id``, ``component`` and
``period_starts``). ``impact_minor`` > 0 means overcharged, < 0 undercharged. A
target left ``None`` is picked from the seed (the least-injected suitable instance);
``control_plane_drift`` then prefers managed instances. Injected rows never overlap.

``missing_usage``
    ``emitter``: no row, no log, no span for the hour (owner ``metering_emitter``).
    ``rejected``: ``metering.emitted`` + ``outbox.published`` exist, then
    ``billing.usage_rejected`` and an errored ``billing.handle_usage`` span; no row
    (owner ``billing_worker``). Always full hours. Impact: minus the hour's price.
``wrong_source``
    ``managed_as_allocation`` (a managed instance's worker row billed as
    ``allocation``) or ``on_allocation_as_app_runtime`` (an on_allocation worker row
    billed as ``app_runtime``). Debited as recorded, so no ledger mismatch. Owner
    ``attribution_mapping``; impact = price as recorded - price under the right source.
``wrong_anchor``
    ``project_id`` (another project of the org), ``runtime_backend``,
    ``operating_mode`` (on a control-plane row, so the source stays right) or
    ``control_plane_scope`` (on a control-plane row: the price changes). Owner
    ``attribution_mapping``; impact as for ``wrong_source`` (0 unless the price moves).
``ledger_mismatch`` (owner ``billing_worker``)
    ``missing_debit``: a row without its debit (impact: minus the expected amount).
    ``wrong_amount``: a debit off by some minor units (ids: row and debit; impact:
    actual - expected). ``orphan_debit``: an extra usage debit whose
    ``usage_record_id`` names no row (a redelivery whose row insert was rolled back;
    ids: only the debit; impact: + its amount).
``control_plane_drift``
    ``worker_as_control_plane`` or ``control_plane_as_worker``: the row's
    ``control_plane_component`` flipped by the emitter (``metering.emitted`` says so
    too), priced as recorded. Owner ``metering_emitter``.
``duplicate_charge``
    ``both_debited``: a second row for the same instance/component/hour with another
    ``source_event_id`` (the emitter re-emitted it), debited too. Ids: both rows and
    the extra debit; impact: + the extra charge. Owner ``billing_worker``.

Attribution expectations list usage rows only (no ledger ids), as the checks do.

Correct cases (``Plant(kind, instance)``; each recorded as a ``CorrectCase``)
=============================================================================
Planted on request: ``duplicate_reversed`` (a duplicate row whose debit is cancelled
by a ``reversal`` credit), ``refund_credit`` and ``promo_credit`` (credits on a
correctly charged row), ``half_even_tie`` (the instance starts so that its worker's
first hour costs exactly k + 0.5 minor units, k even: banker's rounding gives k where
half-up gives k + 1), ``rate_card_change`` (a worker card replaced inside the window;
rows on both sides priced by their own card). Recorded wherever they occur:
``grace_window_pending`` (hours with no row yet), ``on_allocation_worker_allocation``
(on_allocation workers billed as ``allocation``), ``jpy_exponent_zero`` (a JPY org);
asking for one of these only checks that the layout has it. ``half_even_tie`` needs an
instance started by its own call (auto: in a USD or EUR org); ``rate_card_change``
splits the card of its instance's worker at that instance's middle due hour.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal, localcontext
from fractions import Fraction
from typing import Any, Literal

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

__all__ = [
    "ALL_CORRECT_CASES",
    "DEMO_SEED",
    "EXPONENTS",
    "FLAVOURS",
    "GRACE",
    "SERVICES",
    "CorrectCase",
    "CorrectCaseKind",
    "Expected",
    "Injection",
    "InstanceSpec",
    "LifecycleCall",
    "OrgSpec",
    "Plant",
    "Platform",
    "ProjectSpec",
    "ScenarioError",
    "ScenarioSpec",
    "build_platform",
    "charge_minor",
    "demo_platform",
    "demo_spec",
]

HOUR = timedelta(hours=1)
GRACE = timedelta(hours=2)
EXPONENTS: dict[str, int] = {"USD": 2, "EUR": 2, "JPY": 0}
DEMO_SEED = 20260101

SVC_API = "gpuaas-api"
SVC_RUNTIME = "gpuaas-app-runtime-worker"
SVC_BILLING = "gpuaas-billing-worker"
SVC_WEBHOOK = "gpuaas-webhook-worker"
SERVICES: tuple[str, ...] = (SVC_API, SVC_RUNTIME, SVC_BILLING, SVC_WEBHOOK)

Backend = Literal["kubernetes", "ray", "slurm"]
Mode = Literal["managed", "on_allocation"]
CpScope = Literal["dedicated", "shared"]
BACKENDS: tuple[Backend, ...] = ("ray", "slurm", "kubernetes")
MODES: tuple[Mode, ...] = ("managed", "on_allocation")

CorrectCaseKind = Literal[
    "grace_window_pending",
    "duplicate_reversed",
    "refund_credit",
    "promo_credit",
    "on_allocation_worker_allocation",
    "half_even_tie",
    "jpy_exponent_zero",
    "rate_card_change",
]
ALL_CORRECT_CASES: tuple[CorrectCaseKind, ...] = (
    "grace_window_pending",
    "duplicate_reversed",
    "refund_credit",
    "promo_credit",
    "on_allocation_worker_allocation",
    "half_even_tie",
    "jpy_exponent_zero",
    "rate_card_change",
)
_OBSERVED: frozenset[str] = frozenset(
    {"grace_window_pending", "on_allocation_worker_allocation", "jpy_exponent_zero"}
)

FLAVOURS: dict[CheckName, tuple[str, ...]] = {
    "missing_usage": ("emitter", "rejected"),
    "wrong_source": ("managed_as_allocation", "on_allocation_as_app_runtime"),
    "wrong_anchor": ("project_id", "runtime_backend", "operating_mode", "control_plane_scope"),
    "ledger_mismatch": ("missing_debit", "wrong_amount", "orphan_debit"),
    "control_plane_drift": ("worker_as_control_plane", "control_plane_as_worker"),
    "duplicate_charge": ("both_debited",),
}
_OWNER: dict[tuple[str, str], OwningLayer] = {
    ("missing_usage", "emitter"): "metering_emitter",
    ("missing_usage", "rejected"): "billing_worker",
}
_DEFAULT_OWNER: dict[CheckName, OwningLayer] = {
    "missing_usage": "metering_emitter",
    "wrong_source": "attribution_mapping",
    "wrong_anchor": "attribution_mapping",
    "ledger_mismatch": "billing_worker",
    "control_plane_drift": "metering_emitter",
    "duplicate_charge": "billing_worker",
}

_COMPONENTS: dict[str, tuple[str, str]] = {  # backend -> (control plane, worker)
    "ray": ("ray-head", "ray-worker"),
    "slurm": ("slurmctld", "slurmd"),
    "kubernetes": ("operator", "worker"),
}
_SHORT = {"ray": "ray", "slurm": "slurm", "kubernetes": "k8s"}
_APP_KIND = {"ray": "ray_cluster", "slurm": "slurm_cluster", "kubernetes": "inference_endpoint"}
RESOURCE_CLASSES: tuple[str, ...] = ("gpu.h100", "gpu.a100", "cpu.standard")

# Price book: micro-units of the currency per second, for an app_runtime worker.
_BASE_PRICE: dict[str, dict[str, int]] = {
    "USD": {"gpu.h100": 1000, "gpu.a100": 625, "cpu.standard": 40},
    "EUR": {"gpu.h100": 920, "gpu.a100": 580, "cpu.standard": 36},
    "JPY": {"gpu.h100": 150_000, "gpu.a100": 95_000, "cpu.standard": 6_000},
}
# (usage_source, control_plane, control_plane_scope) -> percent of the base price
_FACTORS: tuple[tuple[str, bool, str | None, int], ...] = (
    ("app_runtime", False, None, 100),
    ("allocation", False, None, 80),
    ("app_runtime", True, "dedicated", 125),
    ("app_runtime", True, "shared", 110),
    ("allocation", True, "dedicated", 90),
    ("allocation", True, "shared", 85),
)
_RATE_CHANGE_PERCENT = 104  # the replacing card costs 4% more (equal to no other card)

# every (backend, mode) pair within six instances, modes alternating
_GRID_COMBOS: tuple[tuple[Backend, Mode], ...] = (
    ("ray", "managed"),
    ("slurm", "on_allocation"),
    ("kubernetes", "managed"),
    ("ray", "on_allocation"),
    ("slurm", "managed"),
    ("kubernetes", "on_allocation"),
)
_ORG_NAMES = ("acme", "globex", "tanuki", "initech", "umbrella", "hooli", "stark", "wayne")
_PROJECT_NAMES = ("ml", "research", "inference", "batch", "vision", "llm")


class ScenarioError(ValueError):
    """The spec asks for something the layout cannot hold."""


def charge_minor(quantity: Decimal, unit_price_micros: int, exponent: int) -> int:
    """Rule 5: round_half_even(quantity * unit_price_micros * 10**exponent / 10**6)."""
    with localcontext() as ctx:
        ctx.prec = 60
        exact = quantity * Decimal(unit_price_micros) * (Decimal(10) ** exponent) / Decimal(10**6)
        return int(exact.quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


# ------------------------------------------------------------------ the spec


@dataclass(frozen=True, slots=True)
class InstanceSpec:
    """One app instance. ``None`` fields are drawn from the seed."""

    runtime_backend: Backend
    operating_mode: Mode
    control_plane_scope: CpScope = "dedicated"
    worker_class: str = "gpu.h100"
    app_instance_id: str | None = None
    started_hours_ago: float | None = None
    running: bool | None = None
    run_hours: float | None = None  # when stopped: hours run; None: from the seed
    call: str | None = None  # instances sharing a label are started by one call
    funded: bool = False  # the start call involves customer funding (payment webhook)
    app_kind: str | None = None


@dataclass(frozen=True, slots=True)
class ProjectSpec:
    name: str
    instances: tuple[InstanceSpec, ...]


@dataclass(frozen=True, slots=True)
class OrgSpec:
    name: str
    currency: str
    projects: tuple[ProjectSpec, ...]


@dataclass(frozen=True, slots=True)
class Injection:
    """One drift to inject; see the module docstring for the flavours."""

    check: CheckName
    flavour: str | None = None  # None: the check's default (or, wrong_source: by mode)
    instance: str | None = None  # app_instance_id; None: the generator picks one
    hours: int = 1


@dataclass(frozen=True, slots=True)
class Plant:
    """A correct-but-tricky case to plant (or, for observed kinds, to require)."""

    kind: CorrectCaseKind
    instance: str | None = None


@dataclass(frozen=True, slots=True)
class ScenarioSpec:
    orgs: tuple[OrgSpec, ...]
    injections: tuple[Injection, ...] = ()
    correct_cases: tuple[Plant, ...] = ()
    disputed_call: str | None = None  # a call label: platform.disputed_correlation_id
    min_age_hours: float = 8.0
    max_age_hours: float = 72.0

    @classmethod
    def grid(
        cls,
        orgs: int = 2,
        projects_per_org: int = 2,
        instances_per_project: int = 3,
        *,
        currencies: Sequence[str] = ("USD", "EUR", "JPY"),
        injections: Iterable[Injection] = (),
        correct_cases: Iterable[Plant | CorrectCaseKind] = (),
        project_wide_start: bool = True,
        min_age_hours: float = 8.0,
        max_age_hours: float = 72.0,
    ) -> ScenarioSpec:
        """A layout from counts: backends and modes cycle so every combination appears;
        currencies cycle over the orgs; times are left to the seed. With
        ``project_wide_start`` the first project's instances share one start call,
        which becomes the disputed call."""
        if orgs > len(_ORG_NAMES) or projects_per_org > len(_PROJECT_NAMES):
            raise ScenarioError("too many orgs or projects for the name lists")
        org_specs: list[OrgSpec] = []
        n = 0
        disputed: str | None = None
        for o in range(orgs):
            oname = _ORG_NAMES[o]
            projects: list[ProjectSpec] = []
            for p in range(projects_per_org):
                pname = _PROJECT_NAMES[p]
                label = None
                if project_wide_start and o == 0 and p == 0 and instances_per_project > 1:
                    label = disputed = f"{oname}-{pname}-launch"
                insts: list[InstanceSpec] = []
                for _ in range(instances_per_project):
                    backend, mode = _GRID_COMBOS[n % len(_GRID_COMBOS)]
                    insts.append(
                        InstanceSpec(
                            runtime_backend=backend,
                            operating_mode=mode,
                            control_plane_scope="dedicated" if n % 4 else "shared",
                            worker_class=("gpu.h100", "gpu.a100")[n % 2],
                            call=label,
                            funded=label is not None,
                        )
                    )
                    n += 1
                projects.append(ProjectSpec(pname, tuple(insts)))
            org_specs.append(OrgSpec(oname, currencies[o % len(currencies)], tuple(projects)))
        plants = tuple(p if isinstance(p, Plant) else Plant(p) for p in correct_cases)
        return cls(
            orgs=tuple(org_specs),
            injections=tuple(injections),
            correct_cases=plants,
            disputed_call=disputed,
            min_age_hours=min_age_hours,
            max_age_hours=max_age_hours,
        )


# ------------------------------------------------------------------ the result


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


# ------------------------------------------------------------------ internals


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _floor_hour(t: datetime) -> datetime:
    return t.replace(minute=0, second=0, microsecond=0)


def _seconds(td: timedelta) -> Decimal:
    us = (td.days * 86400 + td.seconds) * 1_000_000 + td.microseconds
    return (Decimal(us) / Decimal(1_000_000)).quantize(Decimal("0.000001"))


def _rfc3339(t: datetime) -> str:
    return t.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


@dataclass(slots=True, eq=False)
class _Inst:
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
    started_at: datetime = _EPOCH
    stopped_at: datetime | None = None
    call: _Call | None = None
    injections: int = 0

    @property
    def mode(self) -> str:
        return self.spec.operating_mode

    def correct_source(self, c: Component) -> str:
        return "app_runtime" if self.mode == "managed" or c.control_plane else "allocation"


@dataclass(slots=True, eq=False)
class _Call:
    label: str | None
    org_id: str
    org_name: str
    project_id: str
    members: list[_Inst]
    funded: bool
    requested_at: datetime = _EPOCH
    correlation_id: str = ""
    trace_id: str = ""
    root_span_id: str = ""


@dataclass(slots=True, eq=False)
class _Row:
    """One planned hourly row (or the hole where one should be)."""

    inst: _Inst
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
    dup_of: _Row | None = None
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


class _Builder:
    def __init__(self, spec: ScenarioSpec, now: datetime, seed: int) -> None:
        if now.tzinfo is None:
            raise ScenarioError("now must be timezone-aware")
        self.spec = spec
        self.now = now.astimezone(UTC)
        self.seed = seed
        self.rng = random.Random(seed)  # noqa: S311 - deterministic data, not secrets
        self.insts: list[_Inst] = []
        self.by_id: dict[str, _Inst] = {}
        self.calls: list[_Call] = []
        self.accounts: list[BillingAccount] = []
        self.cards: list[RateCard] = []
        self.rows: list[_Row] = []
        self.pending: dict[str, list[datetime]] = {}
        self.correct: list[CorrectCase] = []
        self.plant_rows: list[tuple[Plant, list[_Row], tuple[str, ...]]] = []
        self.inj_rows: list[tuple[Injection, str, list[_Row]]] = []
        self.logs: list[LogEvent] = []
        self.spans: list[Span] = []
        self.usage: list[UsageRecord] = []
        self.ledger: list[LedgerEntry] = []
        self.ur_n = 0
        self.le_n = 0
        self.src_seen: set[str] = set()
        self.stop_calls: list[_Call] = []

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

    # ---------------------------------------------------------------- layout

    def layout(self) -> None:
        seen_orgs: set[str] = set()
        counter = 0
        calls: dict[tuple[str, str], _Call] = {}
        alloc_n = 0
        for org in self.spec.orgs:
            if org.currency not in EXPONENTS:
                raise ScenarioError(f"unknown currency {org.currency}")
            org_id = f"org-{org.name}"
            if org_id in seen_orgs:
                raise ScenarioError(f"duplicate org {org_id}")
            seen_orgs.add(org_id)
            self.accounts.append(BillingAccount(org_id, org.currency))
            for proj in org.projects:
                project_id = f"prj-{org.name}-{proj.name}"
                for ispec in proj.instances:
                    counter += 1
                    aid = ispec.app_instance_id or f"ai-{_SHORT[ispec.runtime_backend]}-{counter:04d}"
                    if aid in self.by_id:
                        raise ScenarioError(f"duplicate app instance id {aid}")
                    cp_name, w_name = _COMPONENTS[ispec.runtime_backend]
                    if ispec.worker_class not in RESOURCE_CLASSES:
                        raise ScenarioError(f"unknown resource class {ispec.worker_class}")
                    comps = [
                        Component(aid, cp_name, True, "cpu.standard"),
                        Component(aid, w_name, False, ispec.worker_class),
                    ]
                    alloc = None
                    if ispec.operating_mode == "on_allocation":
                        alloc_n += 1
                        alloc = f"alloc-{org.name}-{alloc_n:03d}"
                    inst = _Inst(
                        app_instance_id=aid,
                        org_id=org_id,
                        org_name=org.name,
                        project_id=project_id,
                        currency=org.currency,
                        spec=ispec,
                        allocation_id=alloc,
                        app_kind=ispec.app_kind or _APP_KIND[ispec.runtime_backend],
                        components=comps,
                        start_delay=timedelta(0),
                    )
                    self.insts.append(inst)
                    self.by_id[aid] = inst
                    if ispec.call is not None:
                        key = (project_id, ispec.call)
                        call = calls.get(key)
                        if call is None:
                            call = _Call(ispec.call, org_id, org.name, project_id, [], False)
                            calls[key] = call
                            self.calls.append(call)
                    else:
                        call = _Call(None, org_id, org.name, project_id, [], False)
                        self.calls.append(call)
                    call.members.append(inst)
                    call.funded = call.funded or ispec.funded
                    inst.call = call
        labels = [c.label for c in self.calls if c.label is not None]
        if len(labels) != len(set(labels)):
            raise ScenarioError("a call label is used in more than one project")
        if self.spec.disputed_call is not None and self.spec.disputed_call not in labels:
            raise ScenarioError(f"disputed call {self.spec.disputed_call!r} names no call")

    def times(self) -> None:
        lo, hi = self.spec.min_age_hours, self.spec.max_age_hours
        if lo < 5 or hi < lo or hi > 24 * 6:
            raise ScenarioError("instance ages must lie between 5 hours and 6 days")
        for call in self.calls:
            call.correlation_id = f"corr-{call.org_name}-{self.hex(32)[:12]}"
            call.trace_id = self.hex(128)
            call.root_span_id = self.span_id()
            first = call.members[0].spec
            age = first.started_hours_ago
            if age is None:
                age = self.rng.uniform(lo, hi)
            if age < 4:
                raise ScenarioError("an instance must have started at least 4 hours before now")
            call.requested_at = self.now - timedelta(hours=age) + self.jitter(0, 1)
            for k, inst in enumerate(call.members):
                inst.start_delay = timedelta(seconds=20 + 7 * k) + self.jitter(0, 5)
                inst.started_at = call.requested_at + inst.start_delay
                s = inst.spec
                running = s.running
                if running is None:
                    running = s.run_hours is None and self.rng.random() < 0.55
                if running:
                    inst.stopped_at = None
                    continue
                run = s.run_hours
                if run is None:
                    run = self.rng.uniform(3.0, max(3.0, age - 1.5))
                stop = inst.started_at + timedelta(hours=run) + self.jitter(0, 60)
                if stop > self.now - timedelta(minutes=5):
                    raise ScenarioError(f"{inst.app_instance_id} would stop after now")
                inst.stopped_at = stop

    def hours_of(self, inst: _Inst) -> list[tuple[datetime, Decimal, bool]]:
        """(period_start, quantity, row due) for every hour the instance ran."""
        end = inst.stopped_at or self.now
        out: list[tuple[datetime, Decimal, bool]] = []
        h = _floor_hour(inst.started_at)
        while h < end:
            q = _seconds(min(h + HOUR, end) - max(h, inst.started_at))
            if q > 0:
                out.append((h, q, h + HOUR + GRACE <= self.now))
            h += HOUR
        return out

    # ---------------------------------------------------------------- prices

    def price_book(self, change: tuple[str, str, str, datetime] | None) -> list[str]:
        since = (self.now - timedelta(days=365)).replace(hour=0, minute=0, second=0, microsecond=0)
        changed: list[str] = []
        for cur in ("USD", "EUR", "JPY"):
            for rc in RESOURCE_CLASSES:
                for source, cp, scope, pct in _FACTORS:
                    price = _BASE_PRICE[cur][rc] * pct // 100
                    tail = f"cp-{scope}" if cp else "std"
                    card_id = f"rc-{cur.lower()}-{rc}-{source}-{tail}"
                    hit = (
                        change is not None
                        and not cp
                        and (cur, rc, source) == change[:3]
                    )
                    if hit and change is not None:
                        t = change[3]
                        self.cards.append(
                            RateCard(card_id, rc, source, cp, scope, "second", price, cur, since, t)
                        )
                        new_id = f"{card_id}-{t:%Y%m%dT%H}"
                        new_price = price * _RATE_CHANGE_PERCENT // 100
                        self.cards.append(
                            RateCard(new_id, rc, source, cp, scope, "second", new_price, cur, t, None)
                        )
                        changed = [card_id, new_id]
                    else:
                        self.cards.append(
                            RateCard(card_id, rc, source, cp, scope, "second", price, cur, since, None)
                        )
        return changed

    def card(
        self, cur: str, rc: str, source: str, cp: bool, scope: str | None, at: datetime
    ) -> RateCard:
        hits = [
            c
            for c in self.cards
            if c.currency == cur
            and c.resource_class == rc
            and c.usage_source == source
            and c.control_plane == cp
            and (c.control_plane_scope is None or c.control_plane_scope == scope)
            and c.effective_from <= at
            and (c.effective_to is None or at < c.effective_to)
        ]
        if len(hits) != 1:
            raise ScenarioError(f"{len(hits)} rate cards match {cur} {rc} {source} cp={cp} {scope}")
        return hits[0]

    def price(
        self, cur: str, rc: str, source: str, cp: bool, scope: str | None, at: datetime, q: Decimal
    ) -> int:
        c = self.card(cur, rc, source, cp, scope, at)
        return charge_minor(q, c.unit_price_micros, EXPONENTS[cur])

    def price_recorded(self, r: _Row) -> int:
        return self.price(
            r.inst.currency, r.comp.resource_class, r.usage_source, r.control_plane,
            r.control_plane_scope, r.period_start, r.quantity,
        )

    def price_correct(self, r: _Row) -> int:
        i, c = r.inst, r.comp
        return self.price(
            i.currency, c.resource_class, i.correct_source(c), c.control_plane,
            i.spec.control_plane_scope, r.period_start, r.quantity,
        )

    # ---------------------------------------------------------------- plants before rows

    def target(self, plant: Plant, ok: Any) -> _Inst:
        if plant.instance is not None:
            inst = self.by_id.get(plant.instance)
            if inst is None:
                raise ScenarioError(f"{plant.kind}: no instance {plant.instance}")
            if not ok(inst):
                raise ScenarioError(f"{plant.kind}: {plant.instance} is not suitable")
            return inst
        cands = [i for i in self.insts if ok(i)]
        if not cands:
            raise ScenarioError(f"{plant.kind}: no suitable instance in the layout")
        return cands[0]

    def due_hours(self, inst: _Inst) -> list[datetime]:
        return [h for h, _, due in self.hours_of(inst) if due]

    def plan_rate_change(self) -> tuple[tuple[str, str, str, datetime] | None, Plant | None]:
        plants = [p for p in self.spec.correct_cases if p.kind == "rate_card_change"]
        if not plants:
            return None, None
        if len(plants) > 1:
            raise ScenarioError("one rate_card_change per scenario")
        plant = plants[0]
        inst = self.target(plant, lambda i: len(self.due_hours(i)) >= 4)
        hours = self.due_hours(inst)
        worker = inst.components[1]
        t = hours[len(hours) // 2]
        return (inst.currency, worker.resource_class, inst.correct_source(worker), t), Plant(
            plant.kind, inst.app_instance_id
        )

    def plant_tie(self) -> None:
        for plant in self.spec.correct_cases:
            if plant.kind != "half_even_tie":
                continue

            explicit = plant.instance is not None

            def ok(i: _Inst, explicit: bool = explicit) -> bool:
                single = i.call is not None and len(i.call.members) == 1
                long_enough = len(self.due_hours(i)) >= 3
                return single and long_enough and (explicit or EXPONENTS[i.currency] == 2)

            inst = self.target(plant, ok)
            worker = inst.components[1]
            top = _floor_hour(inst.started_at)
            card = self.card(
                inst.currency, worker.resource_class, inst.correct_source(worker),
                False, inst.spec.control_plane_scope, top,
            )
            q = _tie_quantity(card.unit_price_micros, EXPONENTS[inst.currency])
            if q is None:
                raise ScenarioError(f"half_even_tie: no tie quantity for {card.rate_card_id}")
            us = int((Decimal(3600) - q) * 1_000_000)
            inst.started_at = top + timedelta(microseconds=us)
            assert inst.call is not None
            inst.call.requested_at = inst.started_at - inst.start_delay
            if inst.stopped_at is not None and inst.stopped_at <= inst.started_at + 3 * HOUR:
                raise ScenarioError("half_even_tie: the instance must run at least 3 hours")
            self.plant_rows.append((Plant(plant.kind, inst.app_instance_id), [], (card.rate_card_id,)))

    # ---------------------------------------------------------------- rows

    def plan_rows(self) -> None:
        for inst in self.insts:
            pend: list[datetime] = []
            for h, q, due in self.hours_of(inst):
                if not due:
                    pend.append(h)
                    continue
                for c in inst.components:
                    src = inst.correct_source(c)
                    self.rows.append(
                        _Row(
                            inst=inst,
                            comp=c,
                            period_start=h,
                            quantity=q,
                            usage_source=src,
                            allocation_id=inst.allocation_id if src == "allocation" else None,
                            project_id=inst.project_id,
                            runtime_backend=inst.spec.runtime_backend,
                            operating_mode=inst.mode,
                            control_plane_scope=inst.spec.control_plane_scope,
                            control_plane=c.control_plane,
                            emitted_at=h + HOUR + self.jitter(3, 90),
                        )
                    )
            if pend:
                self.pending[inst.app_instance_id] = pend
        # the tie rows are reserved: nothing may be injected there
        for plant, rows, _ in self.plant_rows:
            if plant.kind == "half_even_tie":
                inst = self.by_id[plant.instance or ""]
                first = _floor_hour(inst.started_at)
                for r in self.rows:
                    if r.inst is inst and r.period_start == first and not r.comp.control_plane:
                        r.reserved = True
                        rows.append(r)

    def free_rows(self, inst: _Inst, comp: Component | None, *, full: bool = False) -> list[_Row]:
        return [
            r
            for r in self.rows
            if r.inst is inst
            and (comp is None or r.comp.component == comp.component)
            and r.dup_of is None
            and not r.reserved
            and r.tag is None
            and not r.has_dup
            and (not full or r.full_hour)
        ]

    def pick_run(self, inst: _Inst, comp: Component, n: int, *, full: bool) -> list[_Row] | None:
        rows = sorted(self.free_rows(inst, comp, full=full), key=lambda r: r.period_start)
        starts: list[int] = []
        for i in range(len(rows) - n + 1):
            run = rows[i : i + n]
            if all(run[k + 1].period_start - run[k].period_start == HOUR for k in range(n - 1)):
                starts.append(i)
        if not starts:
            return None
        # prefer the middle of the run: first and last hours are partial anyway
        i = starts[len(starts) // 2] if len(starts) <= 2 else self.rng.choice(starts[1:-1] or starts)
        return rows[i : i + n]

    def plant_rows_after(self) -> None:
        kinds = {"duplicate_reversed", "refund_credit", "promo_credit"}
        for plant in self.spec.correct_cases:
            if plant.kind not in kinds:
                continue
            inst = self.target(plant, lambda i: len(self.free_rows(i, i.components[1])) >= 2)
            run = self.pick_run(inst, inst.components[1], 1, full=False)
            if run is None:
                raise ScenarioError(f"{plant.kind}: no free row on {inst.app_instance_id}")
            r = run[0]
            r.reserved = True
            if plant.kind == "duplicate_reversed":
                d = self.duplicate(r)
                d.reversed = True
                self.plant_rows.append((Plant(plant.kind, inst.app_instance_id), [r, d], ()))
            else:
                r.credits.append("refund" if plant.kind == "refund_credit" else "promo_credit")
                self.plant_rows.append((Plant(plant.kind, inst.app_instance_id), [r], ()))

    def duplicate(self, r: _Row) -> _Row:
        d = _Row(
            inst=r.inst,
            comp=r.comp,
            period_start=r.period_start,
            quantity=r.quantity,
            usage_source=r.usage_source,
            allocation_id=r.allocation_id,
            project_id=r.project_id,
            runtime_backend=r.runtime_backend,
            operating_mode=r.operating_mode,
            control_plane_scope=r.control_plane_scope,
            control_plane=r.control_plane,
            emitted_at=r.emitted_at + self.jitter(300, 2400),
            dup_of=r,
            reserved=True,
        )
        r.has_dup = True
        self.rows.append(d)
        return d

    # ---------------------------------------------------------------- injections

    def inject_all(self) -> None:
        for n, inj in enumerate(self.spec.injections):
            if inj.check not in FLAVOURS:
                raise ScenarioError(f"unknown check {inj.check}")
            if inj.hours < 1:
                raise ScenarioError("an injection covers at least one hour")
            self.inject(n, inj)

    def inject(self, n: int, inj: Injection) -> None:
        flavour = inj.flavour
        if flavour is not None and flavour not in FLAVOURS[inj.check]:
            raise ScenarioError(f"{inj.check}: unknown flavour {flavour}")

        def fits(i: _Inst, fl: str) -> Component | None:
            cp, worker = i.components
            other_projects = [
                p for p in (j.project_id for j in self.insts if j.org_id == i.org_id)
                if p != i.project_id
            ]
            if inj.check == "wrong_source":
                if fl == "managed_as_allocation":
                    return worker if i.mode == "managed" else None
                return worker if i.mode == "on_allocation" else None
            if inj.check == "wrong_anchor":
                if fl == "project_id" and not other_projects:
                    return None
                return cp if fl in ("operating_mode", "control_plane_scope") else worker
            if inj.check == "control_plane_drift":
                return worker if fl == "worker_as_control_plane" else cp
            return worker

        def default_flavour(i: _Inst | None) -> str:
            if inj.check == "wrong_source":
                if i is None or i.mode == "managed":
                    return "managed_as_allocation"
                return "on_allocation_as_app_runtime"
            return FLAVOURS[inj.check][0]

        full = True  # interior, full hours: exact impacts, never a rounding-to-zero
        if inj.instance is not None:
            inst = self.by_id.get(inj.instance)
            if inst is None:
                raise ScenarioError(f"{inj.check}: no instance {inj.instance}")
            fl = flavour or default_flavour(inst)
            comp = fits(inst, fl)
            if comp is None:
                raise ScenarioError(f"{inj.check}/{fl} does not fit {inst.app_instance_id}")
            run = self.pick_run(inst, comp, inj.hours, full=full)
        else:
            cands: list[tuple[_Inst, str, Component]] = []
            for i in self.insts:
                fl = flavour or default_flavour(i)
                c = fits(i, fl)
                if c is None:
                    continue
                if inj.check == "control_plane_drift" and flavour is None and i.mode != "managed":
                    continue
                if len(self.free_rows(i, c, full=full)) >= inj.hours + 2:
                    cands.append((i, fl, c))
            if not cands:
                raise ScenarioError(f"{inj.check}: no instance can take this injection")
            least = min(i.injections for i, _, _ in cands)
            inst, fl, comp = self.rng.choice([t for t in cands if t[0].injections == least])
            run = self.pick_run(inst, comp, inj.hours, full=full)
        if run is None:
            raise ScenarioError(
                f"{inj.check}: {inst.app_instance_id} has no {inj.hours} free consecutive hours"
            )
        inst.injections += 1
        for r in run:
            r.tag = n
        self.apply(inj.check, fl, run)
        self.inj_rows.append((Injection(inj.check, fl, inst.app_instance_id, inj.hours), fl, run))

    def apply(self, check: str, fl: str, run: list[_Row]) -> None:
        for r in run:
            i = r.inst
            if check == "missing_usage":
                r.fate = "missing_emitter" if fl == "emitter" else "missing_rejected"
            elif check == "wrong_source":
                if fl == "managed_as_allocation":
                    r.usage_source, r.allocation_id = "allocation", None
                else:
                    r.usage_source, r.allocation_id = "app_runtime", None
            elif check == "wrong_anchor":
                if fl == "project_id":
                    others = sorted(
                        {j.project_id for j in self.insts if j.org_id == i.org_id} - {i.project_id}
                    )
                    r.project_id = others[0]
                elif fl == "runtime_backend":
                    r.runtime_backend = next(b for b in BACKENDS if b != i.spec.runtime_backend)
                elif fl == "operating_mode":
                    r.operating_mode = "on_allocation" if i.mode == "managed" else "managed"
                else:
                    r.control_plane_scope = (
                        "shared" if i.spec.control_plane_scope == "dedicated" else "dedicated"
                    )
            elif check == "control_plane_drift":
                r.control_plane = not r.comp.control_plane
            elif check == "ledger_mismatch":
                if fl == "missing_debit":
                    r.debit = "none"
                elif fl == "wrong_amount":
                    r.debit = "wrong"
                    r.wrong_delta = self.rng.choice([-1, 1]) * self.rng.randint(3, 40)
                else:
                    r.orphan = True
            elif check == "duplicate_charge":
                d = self.duplicate(r)
                d.tag = r.tag

    # ---------------------------------------------------------------- emission

    def log(
        self,
        ts: datetime,
        service: str,
        event: str,
        msg: str,
        call: _Call,
        span_id: str,
        *,
        level: str = "info",
        org_id: str | None = None,
        project_id: str | None = None,
        app_instance_id: str | None = None,
        fields: dict[str, Any] | None = None,
        **extra: Any,
    ) -> None:
        line: dict[str, Any] = {
            "ts": _rfc3339(ts),
            "level": level,
            "msg": msg,
            "event": event,
            "correlation_id": call.correlation_id,
            "trace_id": call.trace_id,
            "span_id": span_id,
            "org_id": org_id or call.org_id,
            "project_id": project_id or call.project_id,
        }
        if app_instance_id:
            line["app_instance_id"] = app_instance_id
        line.update({k: v for k, v in {**extra, **(fields or {})}.items() if v is not None})
        labels = {"service": service, "env": "prod", "level": level}
        self.logs.append(LogEvent(ts=ts, service=service, event=event, line=line, labels=labels))

    def span(
        self,
        call: _Call,
        span_id: str,
        parent: str | None,
        service: str,
        name: str,
        start: datetime,
        end: datetime,
        *,
        error: bool = False,
        extra: dict[str, Any] | None = None,
        **attrs: Any,
    ) -> None:
        a: dict[str, Any] = {"correlation_id": call.correlation_id}
        a.update({k: v for k, v in {**attrs, **(extra or {})}.items() if v is not None})
        self.spans.append(
            Span(
                trace_id=call.trace_id,
                span_id=span_id,
                parent_span_id=parent,
                service=service,
                name=name,
                status="error" if error else "unset",
                start=start,
                end=end,
                attributes=a,
            )
        )

    def emit_calls(self) -> None:
        ms = timedelta(milliseconds=1)
        for call in self.calls:
            t0 = call.requested_at
            single = call.members[0].app_instance_id if len(call.members) == 1 else None
            ids = [i.app_instance_id for i in call.members]
            self.span(
                call, call.root_span_id, None, SVC_API, "POST /v1/app-instances/{id}/start",
                t0, t0 + 140 * ms + self.jitter(0, 0.2),
                app_instance_id=single, org_id=call.org_id, project_id=call.project_id,
                extra={"http.request.method": "POST", "http.route": "/v1/app-instances/{id}/start",
                       "http.response.status_code": 202},
            )
            self.log(
                t0, SVC_API, "app.lifecycle.requested",
                f"start requested for {len(ids)} app instance(s)", call, call.root_span_id,
                app_instance_id=single, action="start", app_instance_ids=ids,
            )
            for inst in call.members:
                self.log(
                    inst.started_at, SVC_RUNTIME, "app.lifecycle.started",
                    f"app instance {inst.app_instance_id} started", call, self.span_id(),
                    app_instance_id=inst.app_instance_id,
                    components=[c.component for c in inst.components],
                    operating_mode=inst.mode, runtime_backend=inst.spec.runtime_backend,
                    control_plane_scope=inst.spec.control_plane_scope,
                    allocation_id=inst.allocation_id,
                )
            if call.funded:
                sid = self.span_id()
                ts = t0 + self.jitter(2, 9)
                payment = f"pay-{self.hex(64)[:12]}"
                self.span(
                    call, sid, call.root_span_id, SVC_WEBHOOK, "payment.webhook",
                    ts, ts + 80 * ms + self.jitter(0, 0.3),
                    app_instance_id=single, payment_id=payment,
                )
                self.log(
                    ts + 50 * ms, SVC_WEBHOOK, "payment.webhook_delivered",
                    "payment webhook delivered", call, sid, app_instance_id=single,
                    payment_id=payment,
                )
        # stop calls: their own correlation id and trace
        for inst in self.insts:
            if inst.stopped_at is None:
                continue
            stop = _Call(None, inst.org_id, inst.org_name, inst.project_id, [inst], False)
            stop.correlation_id = f"corr-{inst.org_name}-{self.hex(32)[:12]}"
            stop.trace_id = self.hex(128)
            stop.root_span_id = self.span_id()
            stop.requested_at = inst.stopped_at - self.jitter(5, 25)
            aid = inst.app_instance_id
            self.span(
                stop, stop.root_span_id, None, SVC_API, "POST /v1/app-instances/{id}/stop",
                stop.requested_at, stop.requested_at + 90 * ms,
                app_instance_id=aid, org_id=inst.org_id, project_id=inst.project_id,
                extra={"http.request.method": "POST", "http.route": "/v1/app-instances/{id}/stop",
                       "http.response.status_code": 202},
            )
            self.log(
                stop.requested_at, SVC_API, "app.lifecycle.requested",
                f"stop requested for {aid}", stop, stop.root_span_id,
                app_instance_id=aid, action="stop",
            )
            self.log(
                inst.stopped_at, SVC_RUNTIME, "app.lifecycle.stopped",
                f"app instance {aid} stopped", stop, self.span_id(), app_instance_id=aid,
                components=[c.component for c in inst.components],
            )
            self.stop_calls.append(stop)

    def emit_rows(self) -> None:
        for r in sorted(self.rows, key=lambda r: (r.emitted_at, r.inst.app_instance_id, r.comp.component)):
            self.emit_row(r)
        # credits come later than every debit: reversals, refunds, promos
        for r in sorted(self.rows, key=lambda r: (r.emitted_at, r.inst.app_instance_id, r.comp.component)):
            self.emit_credits(r)

    def emit_row(self, r: _Row) -> None:
        if r.fate == "missing_emitter":
            return
        inst, call = r.inst, r.inst.call
        assert call is not None
        aid = inst.app_instance_id
        r.source_event_id = self.next_src()
        pub_span = self.span_id()
        published = r.emitted_at + self.jitter(0.2, 3)
        recorded = published + self.jitter(1, 25)
        posted = recorded + self.jitter(0.05, 0.8)
        period_end = r.period_start + HOUR
        common = {
            "component": r.comp.component,
            "period_start": _rfc3339(r.period_start),
            "period_end": _rfc3339(period_end),
            "quantity": float(r.quantity),
            "usage_source": r.usage_source,
            "control_plane_component": r.control_plane,
            "resource_class": r.comp.resource_class,
        }
        # the emitter reports the instance's own anchors and source; attribution errors
        # happen after it (mapping), control-plane drift inside it.
        self.log(
            r.emitted_at, SVC_RUNTIME, "metering.emitted",
            f"metering event for {r.comp.component} {r.period_start:%H:%M}Z",
            call, pub_span, app_instance_id=aid, source_event_id=r.source_event_id,
            fields={
                **common,
                "usage_source": inst.correct_source(r.comp),
                "operating_mode": inst.mode,
                "control_plane_scope": inst.spec.control_plane_scope,
                "runtime_backend": inst.spec.runtime_backend,
                "allocation_id": (
                    inst.allocation_id if inst.correct_source(r.comp) == "allocation" else None
                ),
            },
        )
        self.log(
            published, SVC_RUNTIME, "outbox.published", "outbox event published", call, pub_span,
            app_instance_id=aid, source_event_id=r.source_event_id, component=r.comp.component,
        )
        self.span(
            call, pub_span, call.root_span_id, SVC_RUNTIME, "outbox.publish",
            published - self.jitter(0.005, 0.03), published + self.jitter(0.001, 0.02),
            app_instance_id=aid, source_event_id=r.source_event_id, component=r.comp.component,
            extra={"messaging.destination.name": "metering.usage"},
        )
        handle = self.span_id()
        h_start = recorded - self.jitter(0.01, 0.2)
        if r.fate == "missing_rejected":
            err = "insert usage_records: deadlock detected (SQLSTATE 40P01); moved to dead-letter queue"
            self.span(
                call, handle, pub_span, SVC_BILLING, "billing.handle_usage", h_start,
                recorded + self.jitter(0.001, 0.05), error=True, app_instance_id=aid,
                source_event_id=r.source_event_id, component=r.comp.component,
            )
            self.log(
                recorded, SVC_BILLING, "billing.usage_rejected", "usage event rejected", call,
                handle, level="error", app_instance_id=aid, source_event_id=r.source_event_id,
                component=r.comp.component, error=err,
            )
            return
        r.usage_record_id = self.next_ur()
        self.usage.append(
            UsageRecord(
                usage_record_id=r.usage_record_id,
                source_event_id=r.source_event_id,
                org_id=inst.org_id,
                project_id=r.project_id,
                usage_source=r.usage_source,
                allocation_id=r.allocation_id,
                app_instance_id=aid,
                component=r.comp.component,
                control_plane_component=r.control_plane,
                operating_mode=r.operating_mode,
                control_plane_scope=r.control_plane_scope,
                runtime_backend=r.runtime_backend,
                resource_class=r.comp.resource_class,
                quantity=r.quantity,
                unit="second",
                period_start=r.period_start,
                period_end=period_end,
                correlation_id=call.correlation_id,
                trace_id=call.trace_id,
                recorded_at=recorded,
            )
        )
        self.log(
            recorded, SVC_BILLING, "billing.usage_recorded", "usage recorded", call, handle,
            app_instance_id=aid, project_id=r.project_id, source_event_id=r.source_event_id,
            usage_record_id=r.usage_record_id, component=r.comp.component,
            usage_source=r.usage_source, control_plane_component=r.control_plane,
        )
        expected = self.price_recorded(r)
        r.amount = expected
        post_end = posted + self.jitter(0.002, 0.02)
        if r.debit != "none":
            amount = expected + r.wrong_delta if r.debit == "wrong" else expected
            if amount < 0:
                amount = expected + abs(r.wrong_delta)
                r.wrong_delta = abs(r.wrong_delta)
            r.debit_id = self.post_debit(r, r.usage_record_id, amount, posted, handle, post_end)
        self.span(
            call, handle, pub_span, SVC_BILLING, "billing.handle_usage", h_start,
            post_end + self.jitter(0.001, 0.01), app_instance_id=aid,
            source_event_id=r.source_event_id, usage_record_id=r.usage_record_id,
            component=r.comp.component,
        )
        if r.orphan:
            # a redelivery of the same event: the row insert rolled back, the debit stayed
            r.ghost_usage_id = self.next_ur()
            t = posted + self.jitter(30, 600)
            h2 = self.span_id()
            self.log(
                t, SVC_BILLING, "billing.usage_recorded", "usage recorded", call, h2,
                app_instance_id=aid, source_event_id=r.source_event_id,
                usage_record_id=r.ghost_usage_id, component=r.comp.component,
                usage_source=r.usage_source, control_plane_component=r.control_plane,
            )
            p2 = t + self.jitter(0.05, 0.5)
            e2 = p2 + self.jitter(0.002, 0.02)
            r.orphan_id = self.post_debit(r, r.ghost_usage_id, expected, p2, h2, e2)
            self.span(
                call, h2, pub_span, SVC_BILLING, "billing.handle_usage", t - self.jitter(0.01, 0.1),
                e2 + self.jitter(0.001, 0.01), app_instance_id=aid,
                source_event_id=r.source_event_id, usage_record_id=r.ghost_usage_id,
                component=r.comp.component,
            )

    def post_debit(
        self, r: _Row, usage_record_id: str, amount: int, posted: datetime, parent: str,
        end: datetime,
    ) -> str:
        inst, call = r.inst, r.inst.call
        assert call is not None
        le = self.next_le()
        self.ledger.append(
            LedgerEntry(
                ledger_entry_id=le,
                org_id=inst.org_id,
                project_id=r.project_id,
                usage_record_id=usage_record_id,
                direction="debit",
                kind="usage",
                amount_minor=amount,
                currency=inst.currency,
                reverses_entry_id=None,
                idempotency_key=f"usage:{usage_record_id}",
                correlation_id=call.correlation_id,
                description=(
                    f"{r.comp.component} {r.comp.resource_class} {r.usage_source} "
                    f"{r.period_start:%Y-%m-%dT%H:%M}Z {r.quantity}s"
                ),
                posted_at=posted,
            )
        )
        sid = self.span_id()
        self.span(
            call, sid, parent, SVC_BILLING, "billing.post_ledger", posted - self.jitter(0.001, 0.01),
            end, app_instance_id=inst.app_instance_id, ledger_entry_id=le,
            usage_record_id=usage_record_id, amount_minor=amount, currency=inst.currency,
        )
        self.log(
            posted, SVC_BILLING, "billing.ledger_posted", "ledger entry posted", call, sid,
            app_instance_id=inst.app_instance_id, project_id=r.project_id, ledger_entry_id=le,
            usage_record_id=usage_record_id, amount_minor=amount, currency=inst.currency,
            kind="usage",
        )
        return le

    def emit_credits(self, r: _Row) -> None:
        if not r.usage_record_id:
            return
        inst, call = r.inst, r.inst.call
        assert call is not None
        if r.reversed and r.debit_id:
            le = self.next_le()
            t = r.emitted_at + self.jitter(1800, 3600)
            t = min(t, self.now - timedelta(seconds=30))
            self.ledger.append(
                LedgerEntry(
                    le, inst.org_id, r.project_id, r.usage_record_id, "credit", "reversal",
                    r.amount, inst.currency, r.debit_id, f"reversal:{r.debit_id}",
                    call.correlation_id, f"reverses duplicate usage debit {r.debit_id}", t,
                )
            )
            sid = self.span_id()
            self.log(
                t, SVC_BILLING, "billing.ledger_posted", "duplicate debit reversed", call, sid,
                app_instance_id=inst.app_instance_id, ledger_entry_id=le,
                usage_record_id=r.usage_record_id, amount_minor=r.amount, currency=inst.currency,
                kind="reversal", reverses_entry_id=r.debit_id,
            )
            r.credit_ids.append(le)
        for kind in r.credits:
            le = self.next_le()
            t = min(r.emitted_at + self.jitter(3600, 5400), self.now - timedelta(seconds=30))
            if kind == "refund":
                amount = max(1, r.amount // 2)
                key, desc = f"refund:ticket-{self.hex(32)[:8]}", "goodwill refund (support ticket)"
            else:
                amount = 500 if EXPONENTS[inst.currency] == 2 else 1000
                key, desc = f"promo:WELCOME:{r.usage_record_id}", "promotional credit WELCOME"
            self.ledger.append(
                LedgerEntry(
                    le, inst.org_id, r.project_id, r.usage_record_id, "credit", kind, amount,
                    inst.currency, None, key, call.correlation_id, desc, t,
                )
            )
            r.credit_ids.append(le)

    # ---------------------------------------------------------------- answer key

    def expectations(self) -> list[Expected]:
        out: list[Expected] = []
        for inj, fl, run in self.inj_rows:
            inst = run[0].inst
            assert inst.call is not None
            check = inj.check
            usage: set[str] = set()
            ledger: set[str] = set()
            impact = 0
            if check == "missing_usage":
                impact = -sum(self.price_correct(r) for r in run)
            elif check in ("wrong_source", "wrong_anchor", "control_plane_drift"):
                usage = {r.usage_record_id for r in run}
                impact = sum(self.price_recorded(r) - self.price_correct(r) for r in run)
            elif check == "ledger_mismatch":
                if fl == "missing_debit":
                    usage = {r.usage_record_id for r in run}
                    impact = -sum(r.amount for r in run)
                elif fl == "wrong_amount":
                    usage = {r.usage_record_id for r in run}
                    ledger = {r.debit_id for r in run}
                    impact = sum(r.wrong_delta for r in run)
                else:
                    ledger = {r.orphan_id for r in run}
                    impact = sum(r.amount for r in run)
            elif check == "duplicate_charge":
                for r in run:
                    d = next(x for x in self.rows if x.dup_of is r)
                    usage |= {r.usage_record_id, d.usage_record_id}
                    ledger.add(d.debit_id)
                    impact += d.amount
            comp = run[0].comp.component
            periods = tuple(r.period_start for r in run)
            note = _note(check, fl, inst, comp, periods, run)
            out.append(
                Expected(
                    check=check,
                    app_instance_id=inst.app_instance_id,
                    usage_record_ids=frozenset(usage),
                    ledger_entry_ids=frozenset(ledger),
                    owning_layer=_OWNER.get((check, fl), _DEFAULT_OWNER[check]),
                    correlation_id=inst.call.correlation_id,
                    impact_minor=impact,
                    currency=inst.currency,
                    note=note,
                    flavour=fl,
                    org_id=inst.org_id,
                    project_id=inst.project_id,
                    component=comp,
                    period_starts=periods,
                )
            )
        return out

    def correct_cases(self, changed_cards: list[str], change_plant: Plant | None) -> None:
        for plant, rows, cards in self.plant_rows:
            aid = plant.instance
            urs = frozenset(r.usage_record_id for r in rows if r.usage_record_id)
            les = frozenset(
                x for r in rows for x in (r.debit_id, *r.credit_ids) if x
            )
            periods = tuple(sorted({r.period_start for r in rows}))
            if plant.kind == "half_even_tie":
                r = rows[0]
                card = self.card(
                    r.inst.currency, r.comp.resource_class, r.usage_source, False,
                    r.control_plane_scope, r.period_start,
                )
                exact = r.quantity * card.unit_price_micros * Decimal(10) ** EXPONENTS[
                    r.inst.currency] / Decimal(10**6)
                note = (
                    f"{aid} {r.comp.component} first hour: {r.quantity}s x "
                    f"{card.unit_price_micros} micros = {exact} minor units exactly; "
                    f"half-even gives {r.amount} (half-up would give {r.amount + 1})"
                )
            elif plant.kind == "duplicate_reversed":
                note = (
                    f"{aid}: {rows[1].usage_record_id} duplicates {rows[0].usage_record_id}; "
                    f"its debit {rows[1].debit_id} is reversed by {rows[1].credit_ids[0]}"
                )
            else:
                note = f"{aid}: {plant.kind} on correctly charged row {rows[0].usage_record_id}"
            self.correct.append(CorrectCase(plant.kind, aid, note, urs, les, cards, periods))
        if change_plant is not None:
            aid = change_plant.instance or ""
            inst = self.by_id[aid]
            t = next(c.effective_from for c in self.cards if c.rate_card_id == changed_cards[1])
            worker = inst.components[1]
            rows = [r for r in self.rows if r.inst is inst and r.comp is worker and r.usage_record_id]
            self.correct.append(
                CorrectCase(
                    "rate_card_change", aid,
                    f"{changed_cards[0]} ends and {changed_cards[1]} starts at {_rfc3339(t)}; "
                    f"{aid} {worker.component} rows on both sides priced by their own card",
                    frozenset(r.usage_record_id for r in rows),
                    frozenset(r.debit_id for r in rows if r.debit_id),
                    tuple(changed_cards),
                    (t,),
                )
            )
        for inst in self.insts:
            aid = inst.app_instance_id
            if aid in self.pending:
                self.correct.append(
                    CorrectCase(
                        "grace_window_pending", aid,
                        f"{aid}: {len(self.pending[aid])} hour(s) ending less than 2h before now "
                        "have no row yet (pending, not missing)",
                        period_starts=tuple(self.pending[aid]),
                    )
                )
            if inst.mode == "on_allocation":
                rows = [
                    r for r in self.rows
                    if r.inst is inst and not r.comp.control_plane and r.usage_record_id
                    and r.usage_source == "allocation" and r.tag is None
                ]
                if rows:
                    self.correct.append(
                        CorrectCase(
                            "on_allocation_worker_allocation", aid,
                            f"{aid}: worker rows billed as allocation {inst.allocation_id}",
                            frozenset(r.usage_record_id for r in rows),
                        )
                    )
            if inst.currency == "JPY":
                rows = [r for r in self.rows if r.inst is inst and r.usage_record_id]
                self.correct.append(
                    CorrectCase(
                        "jpy_exponent_zero", aid,
                        f"{aid}: billed in JPY (exponent 0): amounts are whole yen",
                        frozenset(r.usage_record_id for r in rows),
                        frozenset(r.debit_id for r in rows if r.debit_id),
                    )
                )
        present = {c.kind for c in self.correct}
        for plant in self.spec.correct_cases:
            if plant.kind in _OBSERVED and plant.kind not in present:
                raise ScenarioError(f"{plant.kind} was asked for but the layout has none")

    # ---------------------------------------------------------------- all

    def build(self) -> Platform:
        self.layout()
        self.times()
        change, change_plant = self.plan_rate_change()
        changed = self.price_book(change)
        self.plant_tie()
        self.plan_rows()
        self.plant_rows_after()
        self.inject_all()
        self.emit_calls()
        self.emit_rows()
        expected = self.expectations()
        self.correct_cases(changed, change_plant)
        instances = [
            AppInstance(
                app_instance_id=i.app_instance_id,
                org_id=i.org_id,
                project_id=i.project_id,
                app_kind=i.app_kind,
                operating_mode=i.mode,
                control_plane_scope=i.spec.control_plane_scope,
                runtime_backend=i.spec.runtime_backend,
                allocation_id=i.allocation_id,
                status="running" if i.stopped_at is None else "stopped",
                started_at=i.started_at,
                stopped_at=i.stopped_at,
            )
            for i in self.insts
        ]
        calls = [
            LifecycleCall(
                correlation_id=c.correlation_id,
                trace_id=c.trace_id,
                root_span_id=c.root_span_id,
                action="start" if any(c is x for x in self.calls) else "stop",
                org_id=c.org_id,
                project_id=c.project_id,
                app_instance_ids=tuple(i.app_instance_id for i in c.members),
                requested_at=c.requested_at,
                funded=c.funded,
                label=c.label,
            )
            for c in [*self.calls, *self.stop_calls]
        ]
        disputed = None
        if self.spec.disputed_call is not None:
            disputed = next(
                c.correlation_id for c in self.calls if c.label == self.spec.disputed_call
            )
        self.logs.sort(key=lambda e: (e.ts, e.service, e.event))
        self.spans.sort(key=lambda s: (s.trace_id, s.start, s.span_id))
        self.ledger.sort(key=lambda e: (e.posted_at, e.ledger_entry_id))
        return Platform(
            now=self.now,
            seed=self.seed,
            accounts=self.accounts,
            rate_cards=self.cards,
            instances=instances,
            components=[c for i in self.insts for c in i.components],
            usage=sorted(self.usage, key=lambda u: u.usage_record_id),
            ledger=self.ledger,
            logs=self.logs,
            spans=self.spans,
            calls=calls,
            expected=expected,
            correct_cases=self.correct,
            disputed_correlation_id=disputed,
            created_at={
                i.app_instance_id: (i.call.requested_at if i.call else i.started_at)
                for i in self.insts
            },
        )


def _note(
    check: str, fl: str, inst: _Inst, comp: str, periods: tuple[datetime, ...], run: list[_Row]
) -> str:
    when = f"{_rfc3339(periods[0])}" + (f" +{len(periods) - 1}h" if len(periods) > 1 else "")
    aid = inst.app_instance_id
    r = run[0]
    text = {
        ("missing_usage", "emitter"): "no metering event was ever emitted",
        ("missing_usage", "rejected"): "emitted and published, rejected by the billing worker",
        ("wrong_source", "managed_as_allocation"): "managed instance billed as allocation",
        ("wrong_source", "on_allocation_as_app_runtime"): "on_allocation worker billed as app_runtime",
        ("wrong_anchor", "project_id"): f"row anchored to {r.project_id}, not {inst.project_id}",
        ("wrong_anchor", "runtime_backend"): f"row says {r.runtime_backend}, instance runs "
        f"{inst.spec.runtime_backend}",
        ("wrong_anchor", "operating_mode"): f"row says {r.operating_mode}, instance is {inst.mode}",
        ("wrong_anchor", "control_plane_scope"): f"row says {r.control_plane_scope}, instance is "
        f"{inst.spec.control_plane_scope}",
        ("ledger_mismatch", "missing_debit"): "row has no usage debit",
        ("ledger_mismatch", "wrong_amount"): f"debit off by {r.wrong_delta} minor units",
        ("ledger_mismatch", "orphan_debit"): f"debit {r.orphan_id} names usage row "
        f"{r.ghost_usage_id}, which does not exist",
        ("control_plane_drift", "worker_as_control_plane"): "worker recorded as control plane",
        ("control_plane_drift", "control_plane_as_worker"): "control plane recorded as worker",
        ("duplicate_charge", "both_debited"): "hour recorded and debited twice",
    }[(check, fl)]
    return f"{check}/{fl}: {aid} {comp} {when}: {text}"


def _tie_quantity(price_micros: int, exponent: int) -> Decimal | None:
    """A quantity q (seconds, 6 decimals, 900 <= q <= 3300) whose charge is exactly
    k + 1/2 minor units with k even, preferring the largest."""
    unit = Fraction(price_micros * 10**exponent, 10**6)  # minor units per second
    k_max = int(Fraction(3300) * unit)
    for k in range(k_max - (k_max % 2), -1, -2):
        q = Fraction(2 * k + 1, 2) / unit
        if q < 900:
            return None
        if q <= 3300 and (q * 10**6).denominator == 1:
            return Decimal(int(q * 10**6)) / Decimal(10**6)
    return None


def build_platform(spec: ScenarioSpec, *, now: datetime, seed: int) -> Platform:
    """The platform for ``spec`` as of ``now``; everything random comes from ``seed``."""
    return _Builder(spec, now, seed).build()


# ------------------------------------------------------------------ the demo


def demo_spec() -> ScenarioSpec:
    """Three orgs (USD, EUR, JPY), six projects, sixteen instances over every backend and
    mode, every injection flavour at least once, every correct case, and the disputed
    project-wide start ``acme-ml-launch`` (four instances, three with findings)."""

    def i(
        aid: str, backend: Backend, mode: Mode, scope: CpScope, worker: str, age: float,
        *, run: float | None = None, call: str | None = None, funded: bool = False,
    ) -> InstanceSpec:
        return InstanceSpec(
            runtime_backend=backend, operating_mode=mode, control_plane_scope=scope,
            worker_class=worker, app_instance_id=aid, started_hours_ago=age,
            running=run is None, run_hours=run, call=call, funded=funded,
        )

    launch = "acme-ml-launch"
    vision = "tanuki-vision-launch"
    orgs = (
        OrgSpec("acme", "USD", (
            ProjectSpec("ml", (
                i("ai-ray-0001", "ray", "on_allocation", "dedicated", "gpu.h100", 30,
                  call=launch, funded=True),
                i("ai-k8s-0002", "kubernetes", "managed", "shared", "gpu.a100", 30, call=launch),
                i("ai-slurm-0003", "slurm", "managed", "dedicated", "gpu.h100", 30, call=launch),
                i("ai-ray-0004", "ray", "managed", "dedicated", "gpu.a100", 30, call=launch),
                i("ai-k8s-0005", "kubernetes", "managed", "dedicated", "gpu.a100", 40, run=20),
            )),
            ProjectSpec("research", (
                i("ai-slurm-0006", "slurm", "on_allocation", "dedicated", "gpu.h100", 50),
                i("ai-ray-0007", "ray", "managed", "shared", "gpu.h100", 26, run=18),
                i("ai-k8s-0008", "kubernetes", "managed", "dedicated", "gpu.h100", 36),
            )),
        )),
        OrgSpec("globex", "EUR", (
            ProjectSpec("inference", (
                i("ai-k8s-0009", "kubernetes", "managed", "dedicated", "gpu.a100", 20),
                i("ai-ray-0010", "ray", "on_allocation", "shared", "gpu.h100", 44, run=30),
            )),
            ProjectSpec("batch", (
                i("ai-slurm-0011", "slurm", "managed", "dedicated", "gpu.h100", 60, run=40,
                  funded=True),
                i("ai-k8s-0012", "kubernetes", "on_allocation", "dedicated", "gpu.a100", 28),
            )),
        )),
        OrgSpec("tanuki", "JPY", (
            ProjectSpec("vision", (
                i("ai-ray-0013", "ray", "managed", "dedicated", "gpu.h100", 22, call=vision),
                i("ai-slurm-0014", "slurm", "on_allocation", "shared", "gpu.h100", 22,
                  call=vision),
            )),
            ProjectSpec("llm", (
                i("ai-k8s-0015", "kubernetes", "managed", "dedicated", "cpu.standard", 16),
                i("ai-ray-0016", "ray", "on_allocation", "dedicated", "gpu.a100", 34, run=25),
            )),
        )),
    )
    inj = Injection
    injections = (
        inj("wrong_source", "on_allocation_as_app_runtime", "ai-ray-0001", hours=3),
        inj("missing_usage", "rejected", "ai-k8s-0002"),
        inj("duplicate_charge", "both_debited", "ai-slurm-0003"),
        inj("ledger_mismatch", "missing_debit", "ai-slurm-0006"),
        inj("control_plane_drift", "worker_as_control_plane", "ai-ray-0007", hours=2),
        inj("wrong_anchor", "project_id", "ai-k8s-0009"),
        inj("ledger_mismatch", "wrong_amount", "ai-ray-0010"),
        inj("missing_usage", "emitter", "ai-slurm-0011", hours=2),
        inj("wrong_anchor", "operating_mode", "ai-k8s-0012"),
        inj("ledger_mismatch", "orphan_debit", "ai-ray-0013"),
        inj("wrong_anchor", "control_plane_scope", "ai-slurm-0014"),
        inj("wrong_source", "managed_as_allocation", "ai-k8s-0015", hours=2),
        inj("control_plane_drift", "control_plane_as_worker", "ai-ray-0016"),
        inj("wrong_anchor", "runtime_backend", "ai-ray-0016"),
    )
    plants = (
        Plant("half_even_tie", "ai-k8s-0005"),
        Plant("rate_card_change", "ai-k8s-0008"),
        Plant("refund_credit", "ai-ray-0004"),
        Plant("promo_credit", "ai-k8s-0012"),
        Plant("duplicate_reversed", "ai-k8s-0012"),
        Plant("grace_window_pending"),
        Plant("on_allocation_worker_allocation"),
        Plant("jpy_exponent_zero"),
    )
    return ScenarioSpec(orgs=orgs, injections=injections, correct_cases=plants, disputed_call=launch)


def demo_platform(now: datetime | None = None, seed: int = DEMO_SEED) -> Platform:
    """``build_platform(demo_spec())`` as of ``now`` (default: the current time)."""
    return build_platform(demo_spec(), now=now or datetime.now(UTC), seed=seed)
