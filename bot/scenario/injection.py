"""The injections: which instance and which run of hourly rows each drift lands on, and
what each flavour changes there (docs/scenario.md, "Injections")."""

from __future__ import annotations

from bot.diagnosis.model import Component
from bot.scenario.draft import Draft, Inst, Row
from bot.scenario.rows import duplicate, free_rows, pick_run
from bot.scenario.spec import BACKENDS, FLAVOURS, Injection, ScenarioError

FULL = True  # interior, full hours: exact impacts, never a rounding-to-zero


def inject_all(draft: Draft) -> None:
    for n, inj in enumerate(draft.spec.injections):
        if inj.check not in FLAVOURS:
            raise ScenarioError(f"unknown check {inj.check}")
        if inj.hours < 1:
            raise ScenarioError("an injection covers at least one hour")
        inject(draft, n, inj)


def inject(draft: Draft, n: int, inj: Injection) -> None:
    """Injection number ``n``: its rows are tagged ``n`` and recorded for the answer key."""
    flavour = inj.flavour
    if flavour is not None and flavour not in FLAVOURS[inj.check]:
        raise ScenarioError(f"{inj.check}: unknown flavour {flavour}")
    if inj.instance is not None:
        inst = draft.by_id.get(inj.instance)
        if inst is None:
            raise ScenarioError(f"{inj.check}: no instance {inj.instance}")
        fl = flavour or _default_flavour(inj, inst)
        comp = _fits(draft, inj, inst, fl)
        if comp is None:
            raise ScenarioError(f"{inj.check}/{fl} does not fit {inst.app_instance_id}")
    else:
        inst, fl, comp = _choose(draft, inj)
    run = pick_run(draft, inst, comp, inj.hours, full=FULL)
    if run is None:
        raise ScenarioError(
            f"{inj.check}: {inst.app_instance_id} has no {inj.hours} free consecutive hours"
        )
    inst.injections += 1
    for r in run:
        r.tag = n
    apply(draft, inj.check, fl, run)
    draft.inj_rows.append((Injection(inj.check, fl, inst.app_instance_id, inj.hours), fl, run))


def _choose(draft: Draft, inj: Injection) -> tuple[Inst, str, Component]:
    """A random one of the least-injected instances the injection fits, with room to spare."""
    flavour = inj.flavour
    cands: list[tuple[Inst, str, Component]] = []
    for i in draft.insts:
        fl = flavour or _default_flavour(inj, i)
        c = _fits(draft, inj, i, fl)
        if c is None:
            continue
        if inj.check == "control_plane_drift" and flavour is None and i.mode != "managed":
            continue
        if len(free_rows(draft, i, c, full=FULL)) >= inj.hours + 2:
            cands.append((i, fl, c))
    if not cands:
        raise ScenarioError(f"{inj.check}: no instance can take this injection")
    least = min(i.injections for i, _, _ in cands)
    return draft.rng.choice([t for t in cands if t[0].injections == least])


def _fits(draft: Draft, inj: Injection, i: Inst, fl: str) -> Component | None:
    """The component of ``i`` the flavour changes, or None when it cannot apply to ``i``."""
    cp, worker = i.components
    other_projects = [
        p for p in (j.project_id for j in draft.insts if j.org_id == i.org_id)
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


def _default_flavour(inj: Injection, i: Inst | None) -> str:
    if inj.check == "wrong_source":
        if i is None or i.mode == "managed":
            return "managed_as_allocation"
        return "on_allocation_as_app_runtime"
    return FLAVOURS[inj.check][0]


def apply(draft: Draft, check: str, fl: str, run: list[Row]) -> None:
    """Make each row of the run wrong the way the flavour says."""
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
                    {j.project_id for j in draft.insts if j.org_id == i.org_id} - {i.project_id}
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
                r.wrong_delta = draft.rng.choice([-1, 1]) * draft.rng.randint(3, 40)
            else:
                r.orphan = True
        elif check == "duplicate_charge":
            d = duplicate(draft, r)
            d.tag = r.tag
