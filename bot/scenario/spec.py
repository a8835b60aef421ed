"""What a scenario asks for: orgs, projects, app instances, injected drift, planted correct
cases. The full reference of every flavour and correct case is docs/scenario.md."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

from bot.diagnosis.model import CheckName

HOUR = timedelta(hours=1)
GRACE = timedelta(hours=2)
EXPONENTS: dict[str, int] = {"USD": 2, "EUR": 2, "JPY": 0}

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
# kinds recorded wherever the layout has them; asking for one only checks it is there
OBSERVED: frozenset[str] = frozenset(
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
RESOURCE_CLASSES: tuple[str, ...] = ("gpu.h100", "gpu.a100", "cpu.standard")

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
    """One drift to inject; see docs/scenario.md for the flavours."""

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

