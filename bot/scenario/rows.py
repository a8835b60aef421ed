"""The hourly rows: one planned row per component per due hour, with the helpers that find
free runs of rows for plants and injections and that add a duplicate row."""

from __future__ import annotations

from datetime import datetime

from bot.diagnosis.model import Component
from bot.scenario.draft import Draft, Inst, Row, floor_hour
from bot.scenario.spec import HOUR


def plan_rows(draft: Draft) -> None:
    """A correct row per component per due hour; later hours are pending (rule 4's grace)."""
    for inst in draft.insts:
        pend: list[datetime] = []
        for h, q, due in draft.hours_of(inst):
            if not due:
                pend.append(h)
                continue
            for c in inst.components:
                src = inst.correct_source(c)
                draft.rows.append(
                    Row(
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
                        emitted_at=h + HOUR + draft.jitter(3, 90),
                    )
                )
        if pend:
            draft.pending[inst.app_instance_id] = pend
    # the tie rows are reserved: nothing may be injected there
    for plant, rows, _ in draft.plant_rows:
        if plant.kind == "half_even_tie":
            inst = draft.by_id[plant.instance or ""]
            first = floor_hour(inst.started_at)
            for r in draft.rows:
                if r.inst is inst and r.period_start == first and not r.comp.control_plane:
                    r.reserved = True
                    rows.append(r)


def free_rows(draft: Draft, inst: Inst, comp: Component | None, *, full: bool = False) -> list[Row]:
    """The instance's rows nothing is planted or injected on yet."""
    return [
        r
        for r in draft.rows
        if r.inst is inst
        and (comp is None or r.comp.component == comp.component)
        and r.dup_of is None
        and not r.reserved
        and r.tag is None
        and not r.has_dup
        and (not full or r.full_hour)
    ]


def pick_run(draft: Draft, inst: Inst, comp: Component, n: int, *, full: bool) -> list[Row] | None:
    rows = sorted(free_rows(draft, inst, comp, full=full), key=lambda r: r.period_start)
    starts: list[int] = []
    for i in range(len(rows) - n + 1):
        run = rows[i : i + n]
        if all(run[k + 1].period_start - run[k].period_start == HOUR for k in range(n - 1)):
            starts.append(i)
    if not starts:
        return None
    # prefer the middle of the run: first and last hours are partial anyway
    i = starts[len(starts) // 2] if len(starts) <= 2 else draft.rng.choice(starts[1:-1] or starts)
    return rows[i : i + n]


def duplicate(draft: Draft, r: Row) -> Row:
    """A second row for the same hour, re-emitted later with its own source event."""
    d = Row(
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
        emitted_at=r.emitted_at + draft.jitter(300, 2400),
        dup_of=r,
        reserved=True,
    )
    r.has_dup = True
    draft.rows.append(d)
    return d
