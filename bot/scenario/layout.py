"""The layout: orgs and their billing accounts, projects, app instances and their
components, the lifecycle calls that start them, and when each starts and stops."""

from __future__ import annotations

from datetime import timedelta

from bot.diagnosis.model import BillingAccount, Component
from bot.scenario.draft import Call, Draft, Inst
from bot.scenario.spec import EXPONENTS, RESOURCE_CLASSES, InstanceSpec, OrgSpec, ScenarioError

COMPONENTS: dict[str, tuple[str, str]] = {  # backend -> (control plane, worker)
    "ray": ("ray-head", "ray-worker"),
    "slurm": ("slurmctld", "slurmd"),
    "kubernetes": ("operator", "worker"),
}
_SHORT = {"ray": "ray", "slurm": "slurm", "kubernetes": "k8s"}
_APP_KIND = {"ray": "ray_cluster", "slurm": "slurm_cluster", "kubernetes": "inference_endpoint"}


def lay_out(draft: Draft) -> None:
    """Accounts, instances and start calls, in spec order (no random draw)."""
    seen_orgs: set[str] = set()
    counter = 0
    calls: dict[tuple[str, str], Call] = {}
    alloc_n = 0
    for org in draft.spec.orgs:
        if org.currency not in EXPONENTS:
            raise ScenarioError(f"unknown currency {org.currency}")
        org_id = f"org-{org.name}"
        if org_id in seen_orgs:
            raise ScenarioError(f"duplicate org {org_id}")
        seen_orgs.add(org_id)
        draft.accounts.append(BillingAccount(org_id, org.currency))
        for proj in org.projects:
            project_id = f"prj-{org.name}-{proj.name}"
            for ispec in proj.instances:
                counter += 1
                alloc = None
                if ispec.operating_mode == "on_allocation":
                    alloc_n += 1
                    alloc = f"alloc-{org.name}-{alloc_n:03d}"
                inst = _instance(draft, org, project_id, ispec, counter, alloc)
                _join_call(draft, calls, inst)
    labels = [c.label for c in draft.calls if c.label is not None]
    if len(labels) != len(set(labels)):
        raise ScenarioError("a call label is used in more than one project")
    if draft.spec.disputed_call is not None and draft.spec.disputed_call not in labels:
        raise ScenarioError(f"disputed call {draft.spec.disputed_call!r} names no call")


def _instance(
    draft: Draft, org: OrgSpec, project_id: str, ispec: InstanceSpec, counter: int, alloc: str | None
) -> Inst:
    aid = ispec.app_instance_id or f"ai-{_SHORT[ispec.runtime_backend]}-{counter:04d}"
    if aid in draft.by_id:
        raise ScenarioError(f"duplicate app instance id {aid}")
    cp_name, w_name = COMPONENTS[ispec.runtime_backend]
    if ispec.worker_class not in RESOURCE_CLASSES:
        raise ScenarioError(f"unknown resource class {ispec.worker_class}")
    comps = [
        Component(aid, cp_name, True, "cpu.standard"),
        Component(aid, w_name, False, ispec.worker_class),
    ]
    inst = Inst(
        app_instance_id=aid,
        org_id=f"org-{org.name}",
        org_name=org.name,
        project_id=project_id,
        currency=org.currency,
        spec=ispec,
        allocation_id=alloc,
        app_kind=ispec.app_kind or _APP_KIND[ispec.runtime_backend],
        components=comps,
        start_delay=timedelta(0),
    )
    draft.insts.append(inst)
    draft.by_id[aid] = inst
    return inst


def _join_call(draft: Draft, calls: dict[tuple[str, str], Call], inst: Inst) -> None:
    """The instance's start call: its own, or the one its ``call`` label names in its project."""
    ispec = inst.spec
    if ispec.call is not None:
        key = (inst.project_id, ispec.call)
        call = calls.get(key)
        if call is None:
            call = Call(ispec.call, inst.org_id, inst.org_name, inst.project_id, [], False)
            calls[key] = call
            draft.calls.append(call)
    else:
        call = Call(None, inst.org_id, inst.org_name, inst.project_id, [], False)
        draft.calls.append(call)
    call.members.append(inst)
    call.funded = call.funded or ispec.funded
    inst.call = call


def set_times(draft: Draft) -> None:
    """Ids of the start calls, when each call and instance starts, and when it stops."""
    lo, hi = draft.spec.min_age_hours, draft.spec.max_age_hours
    if lo < 5 or hi < lo or hi > 24 * 6:
        raise ScenarioError("instance ages must lie between 5 hours and 6 days")
    for call in draft.calls:
        call.correlation_id = f"corr-{call.org_name}-{draft.hex(32)[:12]}"
        call.trace_id = draft.hex(128)
        call.root_span_id = draft.span_id()
        first = call.members[0].spec
        age = first.started_hours_ago
        if age is None:
            age = draft.rng.uniform(lo, hi)
        if age < 4:
            raise ScenarioError("an instance must have started at least 4 hours before now")
        call.requested_at = draft.now - timedelta(hours=age) + draft.jitter(0, 1)
        for k, inst in enumerate(call.members):
            inst.start_delay = timedelta(seconds=20 + 7 * k) + draft.jitter(0, 5)
            inst.started_at = call.requested_at + inst.start_delay
            s = inst.spec
            running = s.running
            if running is None:
                running = s.run_hours is None and draft.rng.random() < 0.55
            if running:
                inst.stopped_at = None
                continue
            run = s.run_hours
            if run is None:
                run = draft.rng.uniform(3.0, max(3.0, age - 1.5))
            stop = inst.started_at + timedelta(hours=run) + draft.jitter(0, 60)
            if stop > draft.now - timedelta(minutes=5):
                raise ScenarioError(f"{inst.app_instance_id} would stop after now")
            inst.stopped_at = stop

