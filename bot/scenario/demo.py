"""The demo platform ``recon demo`` seeds: every backend and mode, every injection flavour,
every correct case, and a disputed project-wide start."""

from __future__ import annotations

from bot.scenario.spec import (
    Backend,
    CpScope,
    Injection,
    InstanceSpec,
    Mode,
    OrgSpec,
    Plant,
    ProjectSpec,
    ScenarioSpec,
)

DEMO_SEED = 20260101
LAUNCH = "acme-ml-launch"  # the disputed call
VISION = "tanuki-vision-launch"


def demo_spec() -> ScenarioSpec:
    """Three orgs (USD, EUR, JPY), six projects, sixteen instances over every backend and
    mode, every injection flavour at least once, every correct case, and the disputed
    project-wide start ``acme-ml-launch`` (four instances, three with findings)."""
    return ScenarioSpec(
        orgs=_orgs(), injections=_INJECTIONS, correct_cases=_PLANTS, disputed_call=LAUNCH
    )


def _orgs() -> tuple[OrgSpec, ...]:
    return (
        OrgSpec("acme", "USD", (
            ProjectSpec("ml", (
                _i("ai-ray-0001", "ray", "on_allocation", "dedicated", "gpu.h100", 30,
                   call=LAUNCH, funded=True),
                _i("ai-k8s-0002", "kubernetes", "managed", "shared", "gpu.a100", 30, call=LAUNCH),
                _i("ai-slurm-0003", "slurm", "managed", "dedicated", "gpu.h100", 30, call=LAUNCH),
                _i("ai-ray-0004", "ray", "managed", "dedicated", "gpu.a100", 30, call=LAUNCH),
                _i("ai-k8s-0005", "kubernetes", "managed", "dedicated", "gpu.a100", 40, run=20),
            )),
            ProjectSpec("research", (
                _i("ai-slurm-0006", "slurm", "on_allocation", "dedicated", "gpu.h100", 50),
                _i("ai-ray-0007", "ray", "managed", "shared", "gpu.h100", 26, run=18),
                _i("ai-k8s-0008", "kubernetes", "managed", "dedicated", "gpu.h100", 36),
            )),
        )),
        OrgSpec("globex", "EUR", (
            ProjectSpec("inference", (
                _i("ai-k8s-0009", "kubernetes", "managed", "dedicated", "gpu.a100", 20),
                _i("ai-ray-0010", "ray", "on_allocation", "shared", "gpu.h100", 44, run=30),
            )),
            ProjectSpec("batch", (
                _i("ai-slurm-0011", "slurm", "managed", "dedicated", "gpu.h100", 60, run=40,
                   funded=True),
                _i("ai-k8s-0012", "kubernetes", "on_allocation", "dedicated", "gpu.a100", 28),
            )),
        )),
        OrgSpec("tanuki", "JPY", (
            ProjectSpec("vision", (
                _i("ai-ray-0013", "ray", "managed", "dedicated", "gpu.h100", 22, call=VISION),
                _i("ai-slurm-0014", "slurm", "on_allocation", "shared", "gpu.h100", 22,
                   call=VISION),
            )),
            ProjectSpec("llm", (
                _i("ai-k8s-0015", "kubernetes", "managed", "dedicated", "cpu.standard", 16),
                _i("ai-ray-0016", "ray", "on_allocation", "dedicated", "gpu.a100", 34, run=25),
            )),
        )),
    )


def _i(
    aid: str, backend: Backend, mode: Mode, scope: CpScope, worker: str, age: float,
    *, run: float | None = None, call: str | None = None, funded: bool = False,
) -> InstanceSpec:
    return InstanceSpec(
        runtime_backend=backend, operating_mode=mode, control_plane_scope=scope,
        worker_class=worker, app_instance_id=aid, started_hours_ago=age,
        running=run is None, run_hours=run, call=call, funded=funded,
    )


_INJECTIONS: tuple[Injection, ...] = (
    Injection("wrong_source", "on_allocation_as_app_runtime", "ai-ray-0001", hours=3),
    Injection("missing_usage", "rejected", "ai-k8s-0002"),
    Injection("duplicate_charge", "both_debited", "ai-slurm-0003"),
    Injection("ledger_mismatch", "missing_debit", "ai-slurm-0006"),
    Injection("control_plane_drift", "worker_as_control_plane", "ai-ray-0007", hours=2),
    Injection("wrong_anchor", "project_id", "ai-k8s-0009"),
    Injection("ledger_mismatch", "wrong_amount", "ai-ray-0010"),
    Injection("missing_usage", "emitter", "ai-slurm-0011", hours=2),
    Injection("wrong_anchor", "operating_mode", "ai-k8s-0012"),
    Injection("ledger_mismatch", "orphan_debit", "ai-ray-0013"),
    Injection("wrong_anchor", "control_plane_scope", "ai-slurm-0014"),
    Injection("wrong_source", "managed_as_allocation", "ai-k8s-0015", hours=2),
    Injection("control_plane_drift", "control_plane_as_worker", "ai-ray-0016"),
    Injection("wrong_anchor", "runtime_backend", "ai-ray-0016"),
)
_PLANTS: tuple[Plant, ...] = (
    Plant("half_even_tie", "ai-k8s-0005"),
    Plant("rate_card_change", "ai-k8s-0008"),
    Plant("refund_credit", "ai-ray-0004"),
    Plant("promo_credit", "ai-k8s-0012"),
    Plant("duplicate_reversed", "ai-k8s-0012"),
    Plant("grace_window_pending"),
    Plant("on_allocation_worker_allocation"),
    Plant("jpy_exponent_zero"),
)
