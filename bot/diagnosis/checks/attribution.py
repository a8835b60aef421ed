"""The attribution checks (rules 1 to 3): a row's usage source, its anchors, and whether its
component is recorded as control plane. Each costs the difference between the price as
recorded and the price under corrected attribution."""

from __future__ import annotations

from bot.diagnosis.checks.context import Context
from bot.diagnosis.model import AppInstance, CheckName, UsageRecord

ATTRIBUTION_CHECKS: tuple[CheckName, ...] = ("wrong_source", "wrong_anchor", "control_plane_drift")
ANCHOR_FIELDS = ("org_id", "project_id", "app_instance_id", "operating_mode", "control_plane_scope", "runtime_backend")


def check_attribution(ctx: Context, inst: AppInstance, rows: list[UsageRecord]) -> None:
    comps = ctx.components.get(inst.app_instance_id, {})
    anchor = tuple(getattr(inst, f) for f in ANCHOR_FIELDS)
    cur = ctx.currency.get(inst.org_id)
    managed = inst.operating_mode == "managed"
    for u in rows:
        c = comps.get(u.component or "")
        cp = c.control_plane if c else u.control_plane_component
        want_source = "app_runtime" if managed or cp else "allocation"
        src_wrong = u.usage_source != want_source or (
            want_source == "allocation" and u.allocation_id != inst.allocation_id
        )
        cp_wrong = c is not None and u.control_plane_component != c.control_plane
        anchor_wrong = c is None or (
            u.org_id, u.project_id, u.app_instance_id, u.operating_mode, u.control_plane_scope, u.runtime_backend,
        ) != anchor
        if not (src_wrong or cp_wrong or anchor_wrong):
            continue  # the common case: nothing to price
        # price under progressively corrected attribution: the differences telescope
        p0 = ctx.price_recorded(u)
        p1 = ctx.price(cur, u, want_source, u.control_plane_component, u.control_plane_scope)
        p2 = ctx.price(cur, u, want_source, cp, u.control_plane_scope)
        p3 = ctx.price(cur, u, want_source, cp, inst.control_plane_scope)
        if src_wrong:
            if u.usage_source != want_source:
                what = f"billed as {u.usage_source}, should be {want_source}"
            else:
                what = f"allocation_id {u.allocation_id} is not the instance's {inst.allocation_id}"
            ctx.group("wrong_source", inst, "attribution_mapping", what).add_row(u, p0, p1)
        if cp_wrong and c is not None:
            what = (f"component {c.component} recorded as "
                    f"{'control plane' if u.control_plane_component else 'not control plane'}, "
                    f"but it {'is' if c.control_plane else 'is not'}")
            ctx.group("control_plane_drift", inst, "metering_emitter", what).add_row(u, p1, p2)
        if anchor_wrong:
            diffs = [f for f in ANCHOR_FIELDS if getattr(u, f) != getattr(inst, f)]
            if c is None:
                diffs.append("component")
            what = ", ".join(
                f"{f} {getattr(u, f)!s} ≠ {getattr(inst, f)!s}" if f != "component"
                else f"component {u.component} is not one of the instance's" for f in diffs
            )
            ctx.group("wrong_anchor", inst, "attribution_mapping", what).add_row(u, p2, p3)
